"""django-allauth adapter: the hook where Bastion's sign-in policy plugs in (``ACCOUNT_ADAPTER``).

A face of the sign-in policy, so it lives with ``apps.sso.policy``; ``accounts``
keeps the user, the session records and the audit of sign-ins (its services).

- Sign-up is closed by default (tenants and their first owners are created by
  platform staff).
- A password sign-in that apps.sso.policy refuses (admins once SSO works,
  members of SSO-only tenants, staff once platform SSO is enabled) is a form
  error that names the way in, audited as ``auth.sign_in`` denied with reason
  ``sso_required``. The password is checked first: the refusal (which names a
  tenant) is shown only to someone who knows it, so an e-mail address alone
  does not reveal where its owner is an admin.
- Emergency accounts (``apps.sso.emergency``): no policy refusal, but a
  disabled one or one without TOTP/WebAuthn is refused after its password
  (audited high); they get no password-reset e-mail and keep their TOTP.
- Failed attempts are rate-limited by allauth (``ACCOUNT_RATE_LIMITS["login_failed"]``,
  per IP and per account); every attempt refused by the lockout is audited
  as ``auth.sign_in`` denied with reason ``rate_limited``.
"""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import AddEmailForm as AllauthAddEmailForm
from allauth.account.forms import ChangePasswordForm as AllauthChangePasswordForm
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.base.forms import AuthenticateForm
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.html import format_html

from apps.accounts import services
from apps.core.secretbox import SecretBox, SecretUnreadableError
from apps.sso import emergency, policy
from apps.sso.services import emergency as emergency_services
from apps.sso.services import pending_link_for

logger = logging.getLogger(__name__)

LOCKOUT_MESSAGE = (
    "Too many failed sign-in attempts for this account or from your network. "
    "Sign-in is paused for a few minutes: wait and try again, or reset your password."
)


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {**DefaultAccountAdapter.error_messages, "too_many_login_attempts": LOCKOUT_MESSAGE}

    # Set while ``reauthenticate`` runs: a signed-in user confirming their
    # password is not a sign-in (not audited as one, not refused by the SSO rules).
    _reauthenticating = False

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(getattr(settings, "ACCOUNT_ALLOW_SIGNUPS", False))

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        """allauth's rate limit; a refused attempt (lockout) is audited before the error reaches the form."""
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            if not self._reauthenticating:
                services.record_sign_in_failure(
                    identifier=str(credentials.get("email") or credentials.get("username") or ""),
                    reason="rate_limited",
                    result="denied",
                )
            raise

    def authenticate(self, request: HttpRequest, **credentials: Any) -> AbstractBaseUser | None:
        """Check the password (allauth), then refuse it if the sign-in policy says SSO is the way in.

        Raises ValidationError (a form error naming the SSO connection and
        its start URL) for a refused user; the attempt is audited.
        """
        user = super().authenticate(request, **credentials)
        if user is None or self._reauthenticating:
            return user
        # An emergency account goes on to its second factor only if it is enabled and has one (audited).
        emergency_refusal = emergency_services.password_step_refusal(user)
        if emergency_refusal is not None:
            raise ValidationError(emergency_refusal, code="emergency_refused")
        refusal = policy.password_sign_in_check(user)
        if refusal is None:
            return user
        if pending_link_for(request, user) is not None:
            # This browser was just refused an SSO link to this account until its owner confirms it:
            # the password (and, next, the second factor) is that confirmation, and the session goes
            # straight back to the IdP. apps.sso.middleware ends the password session if it lingers.
            services.record_sign_in(
                user=user,  # type: ignore[arg-type]
                method="password",
                result="success",
                reason="sso_link_confirmation",
                tenant=refusal.tenant,
                extra={"rule": refusal.rule, "connection": str(refusal.connection.public_id)},
            )
            return user
        services.record_sign_in(
            user=user,  # type: ignore[arg-type]
            method="password",
            result="denied",
            reason="sso_required",
            tenant=refusal.tenant,
            extra={
                "rule": refusal.rule,
                "tenant": refusal.tenant.slug if refusal.tenant is not None else "",
                "connection": str(refusal.connection.public_id),
            },
        )
        # The plain-text message (audit, tests) plus a link for people: names are escaped.
        raise ValidationError(
            format_html(
                '{} <a href="{}">Sign in with {}</a>',
                refusal.explanation,
                refusal.start_url,
                refusal.connection.name,
            ),
            code="sso_required",
        )

    def send_password_reset_mail(self, user: AbstractBaseUser, email: str, context: dict[str, Any]) -> None:
        """No reset e-mail for an emergency account: only an Owner gives it a new password (by rotating it)."""
        if emergency.account_for_user(user) is not None:
            emergency_services.failure_record(user=user, reason="password_reset_refused")
            return
        super().send_password_reset_mail(user, email, context)

    def reauthenticate(self, user: AbstractBaseUser, password: str) -> bool:
        self._reauthenticating = True
        try:
            return super().reauthenticate(user, password)
        finally:
            self._reauthenticating = False


# allauth stores TOTP secrets and the recovery-code seed in its Authenticator rows and offers
# encrypt/decrypt hooks for them: Bastion encrypts them under their own derived key, so a
# database dump yields no second factor. Rows written before this (plain base32 or hex) still
# read: a Fernet token always starts with "gAAAAA", which neither encoding ever does.
_MFA_SECRETS = SecretBox(salt=b"bastion-mfa", info=b"bastion.mfa.authenticator-secret.v1")
_FERNET_PREFIX = "gAAAAA"


class MFAAdapter(DefaultMFAAdapter):
    """``MFA_ADAPTER``: second-factor secrets encrypted at rest; an emergency account keeps its TOTP.

    An emergency account cannot remove the TOTP authenticator its Owners hold the secret of.
    """

    def encrypt(self, text: str) -> str:
        return _MFA_SECRETS.encrypt(text.encode())

    def decrypt(self, encrypted_text: str) -> str:
        if not encrypted_text.startswith(_FERNET_PREFIX):
            return encrypted_text  # written before encryption was switched on
        try:
            return _MFA_SECRETS.decrypt(encrypted_text).decode()
        except SecretUnreadableError:
            # Fail closed without a 500: an unguessable stand-in that no code matches (base32, so it
            # also serves as a recovery-code seed). The member signs in another way or is reset.
            logger.error("A stored second-factor secret cannot be decrypted (key changed or row altered).")
            return base64.b32encode(secrets.token_bytes(20)).decode("ascii")

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        if authenticator.type == Authenticator.Type.TOTP and emergency.account_for_user(authenticator.user):
            return False
        return super().can_delete_authenticator(authenticator)


class MFAAuthenticateForm(AuthenticateForm):
    """``MFA_FORMS["authenticate"]``: allauth's code form, refusing recovery codes for emergency accounts."""

    def clean_code(self) -> str:
        code = super().clean_code()
        refusal = emergency_services.code_refusal(self.user, self.authenticator.type)
        if refusal is not None:
            raise ValidationError(refusal, code="emergency_recovery_code")
        return code


EMERGENCY_OWNED = (
    "An emergency account's credentials belong to its Owners: they change its password by rotating it, "
    "and its sign-in address never changes."
)


class ChangePasswordForm(AllauthChangePasswordForm):
    """``ACCOUNT_FORMS["change_password"]``: an emergency account keeps the password its Owners sealed."""

    def clean(self) -> dict[str, Any]:
        if emergency.account_for_user(self.user) is not None:
            raise ValidationError(EMERGENCY_OWNED, code="emergency_owned")
        return super().clean()


class AddEmailForm(AllauthAddEmailForm):
    """``ACCOUNT_FORMS["add_email"]``: an emergency account gets no mailbox (nothing to reset a password through)."""

    def clean(self) -> dict[str, Any]:
        if emergency.account_for_user(self.user) is not None:
            raise ValidationError(EMERGENCY_OWNED, code="emergency_owned")
        return super().clean()
