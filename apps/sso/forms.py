"""Input cleaning for SSO settings and home-realm discovery.

Forms check shape (lengths, required fields, file size); the services do the
real validation (metadata parsing, downloads, discovery) and their errors come
back onto the field they name through ``add_service_error``. The client secret
field never renders a value back, bound or not.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from apps.sso import services
from apps.sso.models import SignInPolicy, SSOConnection
from apps.sso.saml import metadata
from apps.sso.services import OIDCSettings, SAMLSettings, SSOInputError
from apps.tenants.models import Membership

MAX_UPLOAD_BYTES = metadata.MAX_METADATA_BYTES
CERTIFICATE_MAX_CHARS = metadata.MAX_CERTIFICATE_CHARS
SOURCE_CHOICES = [
    ("metadata_url", "Metadata URL (recommended: certificates are kept up to date)"),
    ("metadata_xml", "Upload or paste the metadata XML"),
    ("manual", "Enter entity ID, sign-on URL and certificate by hand"),
]


def add_service_error(form: forms.Form, exc: SSOInputError, *, aliases: dict[str, str] | None = None) -> None:
    """Put a service's refusal on the field it names (or on the form when that field is not shown)."""
    name = (aliases or {}).get(exc.field, exc.field)
    form.add_error(name if name in form.fields else None, exc.message)


class _MappingFields(forms.Form):
    """The attribute/claim mapping: a preset to start from, and the four names (blank = preset's)."""

    preset = forms.ChoiceField(
        label="Identity provider",
        required=False,
        help_text="Fills in the attribute names your IdP uses; change any of them below.",
    )
    attr_email = forms.CharField(label="E-mail attribute", max_length=255, required=False)
    attr_first_name = forms.CharField(label="First name attribute", max_length=255, required=False)
    attr_last_name = forms.CharField(label="Last name attribute", max_length=255, required=False)
    attr_groups = forms.CharField(
        label="Groups attribute",
        max_length=255,
        required=False,
        help_text="Groups drive role bindings; leave empty if your IdP sends none.",
    )

    kind = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = services.preset_labels()
        self.fields["preset"].choices = [("", "Custom (type the names)"), *labels.items()]
        self.presets = services.attribute_presets(self.kind)

    def mapping(self) -> dict[str, str]:
        data = self.cleaned_data
        return {name: data.get(f"attr_{name}", "") for name in services.MAPPING_FIELDS}

    @staticmethod
    def mapping_initial(connection: SSOConnection) -> dict[str, Any]:
        mapping = connection.attribute_mapping or {}
        initial = {f"attr_{name}": mapping.get(name, "") for name in services.MAPPING_FIELDS}
        initial["preset"] = mapping.get("preset", "")
        return initial


class SAMLConnectionForm(_MappingFields):
    """A SAML connection: name, the IdP (three ways), signing options, attribute mapping."""

    kind = SSOConnection.Kind.SAML

    name = forms.CharField(max_length=services.NAME_MAX, help_text="Shown on the sign-in page, e.g. “Okta”.")
    source = forms.ChoiceField(
        label="How to configure the identity provider", choices=SOURCE_CHOICES, widget=forms.RadioSelect
    )
    metadata_url = forms.CharField(
        label="Metadata URL",
        max_length=services.URL_MAX,
        required=False,
        help_text="https only. Bastion downloads it now and refreshes it every few hours.",
        widget=forms.URLInput,
    )
    metadata_file = forms.FileField(label="Metadata XML file", required=False)
    metadata_xml = forms.CharField(
        label="…or paste the metadata XML",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
    )
    entity_id = forms.CharField(label="IdP entity ID (issuer)", max_length=services.ENTITY_ID_MAX, required=False)
    sso_url = forms.CharField(
        label="IdP single sign-on URL", max_length=services.URL_MAX, required=False, widget=forms.URLInput
    )
    slo_url = forms.CharField(
        label="IdP single logout URL", max_length=services.URL_MAX, required=False, widget=forms.URLInput
    )
    certificate = forms.CharField(
        label="IdP signing certificate",
        required=False,
        max_length=CERTIFICATE_MAX_CHARS,
        help_text="PEM or base64. Paste several during a certificate rollover.",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"}),
    )
    want_assertion_signed = forms.BooleanField(
        label="Require the assertion itself to be signed",
        required=False,
        initial=True,
        help_text="Recommended; turn off only for IdPs that sign just the response.",
    )
    allow_idp_initiated = forms.BooleanField(
        label="Allow IdP-initiated sign-in (from the IdP's app dashboard)",
        required=False,
        help_text="Off is safer: only sign-ins started at Bastion are accepted.",
    )

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        self.editing = editing
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["metadata_xml"].help_text = "Leave empty to keep the metadata uploaded before."

    @classmethod
    def initial_for(cls, connection: SSOConnection) -> dict[str, Any]:
        config = connection.config or {}
        source = config.get("source") or ("metadata_url" if config.get("metadata_url") else "manual")
        return {
            "name": connection.name,
            "source": source,
            "metadata_url": config.get("metadata_url", ""),
            "entity_id": config.get("idp_entity_id", ""),
            "sso_url": config.get("idp_sso_url", ""),
            "slo_url": config.get("idp_slo_url", ""),
            "certificate": "\n".join(config.get("idp_x509_certs") or []) if source == "manual" else "",
            "want_assertion_signed": config.get("want_assertion_signed", True),
            "allow_idp_initiated": config.get("allow_idp_initiated", False),
            **cls.mapping_initial(connection),
        }

    def clean_metadata_file(self) -> str:
        upload: UploadedFile | None = self.cleaned_data.get("metadata_file")
        if not upload:
            return ""
        if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_UPLOAD_BYTES // 1024} KiB; that is not IdP metadata."
            )
        raw = upload.read(MAX_UPLOAD_BYTES + 1)
        if len(raw) > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_UPLOAD_BYTES // 1024} KiB; that is not IdP metadata."
            )
        for encoding in ("utf-8-sig", "utf-16"):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                continue
        raise forms.ValidationError("The file is not a text file (expected XML).")

    def clean_metadata_xml(self) -> str:
        text = self.cleaned_data.get("metadata_xml", "")
        if len(text.encode()) > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The metadata is larger than {MAX_UPLOAD_BYTES // 1024} KiB.")
        return text

    def saml_settings(self) -> SAMLSettings:
        data = self.cleaned_data
        return SAMLSettings(
            source=data["source"],
            metadata_xml=data.get("metadata_file") or data.get("metadata_xml") or "",
            metadata_url=data.get("metadata_url", ""),
            entity_id=data.get("entity_id", ""),
            sso_url=data.get("sso_url", ""),
            slo_url=data.get("slo_url", ""),
            certificate=data.get("certificate", ""),
            want_assertion_signed=bool(data.get("want_assertion_signed")),
            allow_idp_initiated=bool(data.get("allow_idp_initiated")),
        )

    def error_aliases(self) -> dict[str, str]:
        """Errors about the metadata land under the upload field when a file was uploaded."""
        if self.cleaned_data.get("metadata_file"):
            return {"metadata_xml": "metadata_file"}
        return {}


class OIDCConnectionForm(_MappingFields):
    """An OpenID Connect connection: issuer, client credentials, scopes, claim mapping."""

    kind = SSOConnection.Kind.OIDC

    name = forms.CharField(max_length=services.NAME_MAX, help_text="Shown on the sign-in page, e.g. “Okta”.")
    issuer = forms.CharField(
        label="Issuer URL",
        max_length=services.URL_MAX,
        help_text="e.g. https://acme.okta.com or https://login.microsoftonline.com/<tenant id>/v2.0",
        widget=forms.URLInput,
    )
    client_id = forms.CharField(label="Client ID", max_length=services.CLIENT_ID_MAX)
    client_secret = forms.CharField(
        label="Client secret",
        max_length=services.CLIENT_SECRET_MAX,
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    scopes = forms.CharField(
        label="Scopes",
        max_length=1000,
        initial=" ".join(services.DEFAULT_OIDC_SCOPES),
        help_text="Separated by spaces; openid is always requested. Add groups if your IdP needs it.",
    )
    mfa_acr_values = forms.CharField(
        label="ACR values that mean MFA",
        max_length=1000,
        required=False,
        help_text="Optional, separated by spaces; amr values such as mfa, otp or hwk are recognised anyway.",
    )

    email_verified_not_sent = forms.BooleanField(
        label="IdP does not send email_verified",
        required=False,
        help_text=(
            "Off by default: Bastion refuses a sign-in unless the ID token says the e-mail address is verified "
            "(email_verified: true). Turn this on only if your provider never sends that claim and verifies "
            "every address it issues; an explicit email_verified: false is refused anyway."
        ),
    )

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        self.editing = editing
        super().__init__(*args, **kwargs)
        field = self.fields["client_secret"]
        if editing:
            field.help_text = "Stored encrypted and never shown. Leave empty to keep the stored secret."
        else:
            field.required = True
            field.help_text = "Stored encrypted and never shown again."

    @classmethod
    def initial_for(cls, connection: SSOConnection) -> dict[str, Any]:
        config = connection.config or {}
        return {
            "name": connection.name,
            "issuer": config.get("issuer", ""),
            "client_id": config.get("client_id", ""),
            "scopes": " ".join(config.get("scopes") or services.DEFAULT_OIDC_SCOPES),
            "mfa_acr_values": " ".join(config.get("mfa_acr_values") or []),
            "email_verified_not_sent": bool(config.get("email_verified_not_sent")),
            **cls.mapping_initial(connection),
        }

    def oidc_settings(self) -> OIDCSettings:
        data = self.cleaned_data
        return OIDCSettings(
            issuer=data["issuer"],
            client_id=data["client_id"],
            client_secret=data.get("client_secret") or "",
            scopes=tuple(data.get("scopes", "").split()),
            mfa_acr_values=tuple(data.get("mfa_acr_values", "").split()),
            email_verified_not_sent=bool(data.get("email_verified_not_sent")),
        )

    def error_aliases(self) -> dict[str, str]:
        return {}


class DomainClaimForm(forms.Form):
    """Claim an e-mail domain for the tenant."""

    domain = forms.CharField(
        max_length=services.DOMAIN_MAX,
        help_text="The part after @ in your people's addresses, e.g. acme.com. Claim one domain at a time.",
    )


class PolicyForm(forms.Form):
    """The tenant's sign-in policy (fields and help of ``SignInPolicy``)."""

    sso_required = forms.BooleanField(label="Require SSO for every member", required=False)
    mfa_required_local = forms.BooleanField(label="Require MFA for password sign-ins", required=False)
    mfa_required_admin_sso = forms.BooleanField(label="Require IdP-asserted MFA for admins", required=False)
    session_absolute_minutes = forms.IntegerField(
        label="Session lifetime (minutes)", min_value=5, max_value=7 * 24 * 60
    )
    session_idle_minutes = forms.IntegerField(label="Idle timeout (minutes)", min_value=1, max_value=24 * 60)

    def __init__(self, *args: Any, platform: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if platform:
            # Staff are always SSO-only once platform SSO works; there are no "members" to require it of.
            del self.fields["sso_required"]
        for name, field in self.fields.items():
            field.help_text = str(SignInPolicy._meta.get_field(name).help_text)

    @staticmethod
    def initial_for(policy: SignInPolicy) -> dict[str, Any]:
        return {name: getattr(policy, name) for name in PolicyForm.base_fields}


class DiscoverForm(forms.Form):
    """Home-realm discovery: the e-mail address decides where the person signs in."""

    email = forms.EmailField(
        label="Work e-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    next = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)


class ConfirmForm(forms.Form):
    """A POST with nothing but the CSRF token (confirmation pages)."""


class EnableForm(forms.Form):
    """Enabling a connection: the admin confirms they saw who loses password access."""

    confirm = forms.BooleanField(
        required=True,
        label="I understand: these people can no longer sign in with a password once this connection is enabled.",
        error_messages={"required": "Tick the box to confirm you have seen who loses password access."},
    )


class StaffDisableForm(forms.Form):
    """Platform staff switching a tenant's connection off: the reason goes to the audit log and the owners."""

    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 3}), label="Reason (sent to the owners)"
    )


class DomainRouteForm(forms.Form):
    """Route one of the tenant's verified domains to a connection (choices narrowed to the tenant's domains)."""

    domain = forms.ModelChoiceField(queryset=None, label="Domain", empty_label=None)  # type: ignore[arg-type]

    def __init__(self, *args: Any, domains: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["domain"].queryset = domains  # type: ignore[attr-defined]


class EmergencyAccountForm(forms.Form):
    """A new emergency account: a label saying where its credentials are kept, and its built-in role."""

    label = forms.CharField(
        max_length=60,
        help_text="Where the sealed credentials are kept, e.g. “Safe in HQ, envelope A”. Unique in your organisation.",
    )
    role = forms.ChoiceField(
        choices=Membership.Role.choices,
        initial=Membership.Role.OWNER,
        help_text="What it may do once signed in. Owner lets it repair SSO; you cannot give more than you hold.",
    )
