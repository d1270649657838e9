"""SSO settings pages: the permission contract, adding and editing connections, bad input, domains, policy, groups."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from django.test import Client

from apps.access.models import Role, RoleBinding
from apps.sso import oidc, services
from apps.sso.models import SignInPolicy, SSOConnection, VerifiedDomain
from apps.sso.saml import binding as saml_binding
from apps.sso.saml import metadata
from tests.contract import PageContract, PermissionContract, Ref, form_page
from tests.sso import saml_helpers as h
from tests.sso.oidc_provider import CLIENT_ID, CLIENT_SECRET, OIDCProvider
from tests.sso.test_flow_support import events, https_client, saml_connection, verify_domain

pytestmark = pytest.mark.django_db

BASE = "/t/acme/settings/sso/"


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.SSO_ALLOW_INSECURE_LOOPBACK = True
    oidc.clear_jwks_cache()


@pytest.fixture
def admin(cast) -> Client:
    return https_client(cast.admin)


class _MetadataHandler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes, float]] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status, content_type, body, delay = self.routes.get(self.path, (404, "text/plain", b"not found", 0))
        if delay:
            time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)


@pytest.fixture
def idp_web():
    """A loopback web server for IdP metadata URLs: ``routes[path] = (status, content type, body, delay)``."""
    handler = type("Handler", (_MetadataHandler,), {"routes": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    server.routes = handler.routes  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def _saml_form(**values: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Okta",
        "source": "metadata_xml",
        "want_assertion_signed": "on",
        "preset": "okta",
    }
    data.update(values)
    return data


# --- the permission contract -------------------------------------------------------------------

CONNECTION = {"kwargs": {"connection_id": Ref("mine")}, "foreign": ({"connection_id": Ref("theirs")},)}


def _action(url: str, ok_status: int = 302) -> PageContract:
    """A POST on a connection; Globex's connection is the attacker's id."""
    return PageContract(f"sso_settings:{url}", "sso.manage", method="post", ok_status=ok_status, **CONNECTION)


class TestSettingsPagesContract(PermissionContract):
    """Every SSO settings page needs sso.manage: members and viewers 403, admins and owners in."""

    app_namespace = "sso_settings"
    contracts = (
        PageContract("sso_settings:list", "sso.manage"),
        PageContract("sso_settings:saml_create", "sso.manage"),
        PageContract("sso_settings:oidc_create", "sso.manage"),
        PageContract("sso_settings:detail", "sso.manage", **CONNECTION),
        *form_page("sso_settings:edit", "sso.manage", data=_saml_form(name="Okta (prod)"), **CONNECTION),  # a rename
        *form_page("sso_settings:delete", "sso.manage", data={"confirm": "on"}, **CONNECTION),
        # No test ran in this browser: the result page sends back to the connection.
        PageContract("sso_settings:test_result", "sso.manage", ok_status=302, **CONNECTION),
        *(_action(url) for url in ("test", "disable", "refresh", "primary", "route")),  # "test" is off to the IdP
        *form_page("sso_settings:enable", "sso.manage", data={"confirm": "on"}, **CONNECTION),
        *form_page("sso_settings:domains", "sso.manage", data={"domain": "acme-corp.com"}),
        PageContract(
            "sso_settings:domain_release",
            "sso.manage",
            kwargs={"domain_id": Ref("my_domain")},
            method="post",
            ok_status=302,
            foreign=({"domain_id": Ref("their_domain")},),
        ),
        PageContract(
            "sso_settings:domain_check",
            "sso.manage",
            kwargs={"domain_id": Ref("my_domain")},
            method="post",
            ok_status=302,
            foreign=({"domain_id": Ref("their_domain")},),
        ),
        PageContract("sso_settings:policy", "sso.manage"),
        PageContract("sso_settings:groups", "sso.manage"),
    )

    @pytest.fixture
    def contract_world(self, cast):
        return SimpleNamespace(
            mine=saml_connection(cast.acme, source="metadata_xml"),
            theirs=saml_connection(cast.globex),
            my_domain=verify_domain(cast.acme, "acme.example"),
            their_domain=verify_domain(cast.globex, "globex.example"),
        )

    def make_client(self, user=None) -> Client:
        return https_client(user)

    def state(self, world):
        """The audit log, every connection, domain claim and sign-in policy, as they are."""
        return (
            super().state(world),
            tuple(SSOConnection.objects.order_by("pk").values_list("pk", "tenant_id", "name", "status")),
            tuple(VerifiedDomain.objects.order_by("pk").values_list("pk", "tenant_id", "domain", "verified_at")),
            tuple(SignInPolicy.objects.order_by("pk").values_list()),
        )


def test_list_shows_connections_with_status(cast, admin) -> None:
    saml_connection(cast.acme)
    saml_connection(cast.globex).__class__.objects.filter(tenant=cast.globex).update(name="Globex Secret IdP")

    html = admin.get(BASE).content.decode()

    assert "Okta" in html
    assert "Enabled" in html
    assert "Globex Secret IdP" not in html


# --- adding SAML connections ---------------------------------------------------------------------


def test_add_page_shows_sp_details_before_idp_settings(cast, admin) -> None:
    html = admin.get(BASE + "connections/new/saml/").content.decode()

    sp = html.index("Bastion's details for your identity provider")
    idp = html.index("Your identity provider")
    assert sp < idp
    assert "https://bastion.example.com/sso/saml/" in html
    assert "/acs/" in html


def test_add_from_metadata_upload_uses_the_shown_sp_urls(cast, admin) -> None:
    page = admin.get(BASE + "connections/new/saml/").content.decode()
    draft_id = page.split('name="draft_id" value="')[1].split('"')[0]
    shown_acs = page.split('ACS URL (Reply URL)</dt><dd><code data-sp="acs_url">')[1].split("<")[0]
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("okta.xml", h.idp_metadata_xml().encode(), content_type="text/xml")
    response = admin.post(BASE + "connections/new/saml/", _saml_form(metadata_file=upload, draft_id=draft_id))

    assert response.status_code == 302
    connection = SSOConnection.objects.get(tenant=cast.acme)
    assert shown_acs == f"https://bastion.example.com/sso/saml/{connection.public_id}/acs/"
    assert connection.status == SSOConnection.Status.DRAFT
    assert connection.config["idp_entity_id"] == h.IDP_ENTITY_ID
    assert connection.config["source"] == "metadata_xml"
    assert connection.attribute_mapping["email"] == "email"
    (event,) = events("sso.connection_create", tenant=cast.acme)
    assert event.metadata["before"] is None
    assert event.metadata["after"]["config"]["idp_entity_id"] == h.IDP_ENTITY_ID
    assert "metadata_xml" not in event.metadata["after"]["config"]
    detail = admin.get(response["Location"]).content.decode()
    assert detail.index("Bastion's details") < detail.index("2. Identity provider")


def test_add_manually(cast, admin) -> None:
    response = admin.post(
        BASE + "connections/new/saml/",
        _saml_form(
            source="manual",
            entity_id=h.IDP_ENTITY_ID,
            sso_url=h.IDP_SSO_URL,
            certificate=h.idp_keys().cert_base64,
        ),
    )

    assert response.status_code == 302
    connection = SSOConnection.objects.get(tenant=cast.acme)
    assert connection.config["idp_x509_certs"] == [metadata.parse_certificate(h.idp_keys().cert_pem)]


def test_add_from_metadata_url(cast, admin, idp_web, django_capture_on_commit_callbacks) -> None:
    idp_web.routes["/metadata"] = (200, "application/samlmetadata+xml", h.idp_metadata_xml().encode(), 0)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin.post(
            BASE + "connections/new/saml/", _saml_form(source="metadata_url", metadata_url=idp_web.base + "/metadata")
        )

    assert response.status_code == 302
    connection = SSOConnection.objects.get(tenant=cast.acme)
    assert connection.config["metadata_url"] == idp_web.base + "/metadata"
    assert connection.config["idp_sso_url"] == h.IDP_SSO_URL
    assert len(callbacks) == 1  # the refresh task was enqueued after commit (eager in tests)
    assert events("sso.metadata_refresh", tenant=cast.acme)


BAD_METADATA = [
    ("not xml at all", "not well-formed"),
    ("<html><body>Sign in to Okta</body></html>", "HTML page"),
    ('<?xml version="1.0"?><root/>', "not SAML 2.0 metadata"),
    (
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><md:EntityDescriptor '
        'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x">&e;</md:EntityDescriptor>',
        "",
    ),
    (h.idp_metadata_xml(certs=[]), "no signing certificate"),
]


@pytest.mark.parametrize(("xml", "message"), BAD_METADATA)
def test_bad_metadata_is_a_form_error_and_nothing_is_saved(cast, admin, xml, message) -> None:
    response = admin.post(BASE + "connections/new/saml/", _saml_form(metadata_xml=xml))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not SSOConnection.objects.filter(setup_pending=False).exists()  # only the page's empty draft
    assert events("sso.connection_create") == []


def test_huge_metadata_is_refused(cast, admin) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    huge = SimpleUploadedFile("huge.xml", b"<x>" + b"a" * (metadata.MAX_METADATA_BYTES + 10) + b"</x>")

    response = admin.post(BASE + "connections/new/saml/", _saml_form(metadata_file=huge))

    assert response.status_code == 400
    assert "larger than" in response.content.decode()
    assert not SSOConnection.objects.filter(setup_pending=False).exists()  # only the page's empty draft


@pytest.mark.parametrize(
    ("certificate", "message"),
    [
        ("definitely not a certificate", "not valid base64"),
        ("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----", "private key"),
        ("", "Paste the identity provider"),
    ],
)
def test_bad_certificate_is_a_form_error(cast, admin, certificate, message) -> None:
    response = admin.post(
        BASE + "connections/new/saml/",
        _saml_form(source="manual", entity_id=h.IDP_ENTITY_ID, sso_url=h.IDP_SSO_URL, certificate=certificate),
    )

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not SSOConnection.objects.filter(setup_pending=False).exists()  # only the page's empty draft


def test_plain_http_sso_url_is_refused(cast, admin) -> None:
    response = admin.post(
        BASE + "connections/new/saml/",
        _saml_form(
            source="manual",
            entity_id=h.IDP_ENTITY_ID,
            sso_url="http://idp.example.test/sso",
            certificate=h.idp_keys().cert_pem,
        ),
    )

    assert response.status_code == 400
    assert "must start with https://" in response.content.decode()


def test_metadata_url_returning_html_is_a_form_error(cast, admin, idp_web) -> None:
    idp_web.routes["/login"] = (200, "text/html", b"<!doctype html><html><body>Sign in</body></html>", 0)

    response = admin.post(
        BASE + "connections/new/saml/", _saml_form(source="metadata_url", metadata_url=idp_web.base + "/login")
    )

    assert response.status_code == 400
    assert "HTML page" in response.content.decode()
    assert not SSOConnection.objects.filter(setup_pending=False).exists()  # only the page's empty draft


def test_metadata_url_timing_out_is_a_form_error(cast, admin, idp_web, monkeypatch) -> None:
    idp_web.routes["/slow"] = (200, "text/xml", h.idp_metadata_xml().encode(), 3)
    monkeypatch.setattr(
        saml_binding, "fetch_idp_metadata", functools.partial(saml_binding.fetch_idp_metadata, timeout=0.5)
    )

    started = time.monotonic()
    response = admin.post(
        BASE + "connections/new/saml/", _saml_form(source="metadata_url", metadata_url=idp_web.base + "/slow")
    )

    assert time.monotonic() - started < 2.5
    assert response.status_code == 400
    assert "timed out" in response.content.decode()
    assert not SSOConnection.objects.filter(setup_pending=False).exists()  # only the page's empty draft


def test_failed_edit_keeps_the_last_working_config(cast, admin) -> None:
    connection = saml_connection(cast.acme)
    before = dict(connection.config)

    response = admin.post(
        f"{BASE}connections/{connection.pk}/edit/",
        _saml_form(name="Renamed", metadata_xml="<html>oops</html>"),
    )

    assert response.status_code == 400
    connection.refresh_from_db()
    assert connection.name == "Okta"
    assert connection.config == before
    assert events("sso.connection_update") == []


def test_edit_that_changes_the_idp_needs_a_new_test(cast, admin) -> None:
    connection = saml_connection(cast.acme, status=SSOConnection.Status.TESTED)
    other = h.make_key_pair("new-idp.example.test")

    response = admin.post(
        f"{BASE}connections/{connection.pk}/edit/",
        _saml_form(
            source="manual", entity_id="https://new-idp.example.test", sso_url=h.IDP_SSO_URL, certificate=other.cert_pem
        ),
    )

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.DRAFT
    assert "tested_at" not in connection.config
    event = events("sso.connection_update", tenant=cast.acme)[-1]
    assert event.metadata["needs_new_test"] is True
    assert event.metadata["before"]["config"]["idp_entity_id"] == h.IDP_ENTITY_ID
    assert event.metadata["after"]["config"]["idp_entity_id"] == "https://new-idp.example.test"


def test_rename_only_keeps_the_test(cast, admin) -> None:
    connection = saml_connection(cast.acme, status=SSOConnection.Status.TESTED, source="metadata_xml")

    response = admin.post(f"{BASE}connections/{connection.pk}/edit/", _saml_form(name="Okta (prod)"))

    assert response.status_code == 302
    connection.refresh_from_db()
    assert (connection.name, connection.status) == ("Okta (prod)", SSOConnection.Status.TESTED)


def test_duplicate_name_is_refused(cast, admin) -> None:
    saml_connection(cast.acme)

    response = admin.post(BASE + "connections/new/saml/", _saml_form(metadata_xml=h.idp_metadata_xml()))

    assert response.status_code == 400
    assert "already has this name" in response.content.decode()


# --- OIDC ----------------------------------------------------------------------------------------


@pytest.fixture
def provider():
    with OIDCProvider() as running:
        yield running


def _oidc_form(provider, **values: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Entra",
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": "openid email profile",
        "preset": "entra",
    }
    data.update(values)
    return data


def test_add_oidc_connection(cast, admin, provider) -> None:
    response = admin.post(BASE + "connections/new/oidc/", _oidc_form(provider))

    assert response.status_code == 302
    connection = SSOConnection.objects.get(tenant=cast.acme)
    assert connection.config["discovery"]["issuer"] == provider.issuer
    assert connection.config["scopes"] == ["openid", "email", "profile"]
    assert CLIENT_SECRET not in str(connection.config)


@pytest.mark.parametrize("missing", ["jwks_uri", "token_endpoint", "authorization_endpoint"])
def test_discovery_missing_fields_is_a_form_error(cast, admin, provider, missing) -> None:
    provider.discovery_omit = {missing}

    response = admin.post(BASE + "connections/new/oidc/", _oidc_form(provider))

    assert response.status_code == 400
    assert missing in response.content.decode()
    assert not SSOConnection.objects.filter(setup_pending=False).exists()  # only the page's empty draft


def test_discovery_html_is_a_form_error(cast, admin, provider) -> None:
    provider.discovery_html = True

    response = admin.post(BASE + "connections/new/oidc/", _oidc_form(provider))

    assert response.status_code == 400
    assert not SSOConnection.objects.filter(setup_pending=False).exists()  # only the page's empty draft


def test_oidc_secret_required_on_create_and_bad_scopes(cast, admin, provider) -> None:
    no_secret = admin.post(BASE + "connections/new/oidc/", _oidc_form(provider, client_secret=""))
    bad_scope = admin.post(BASE + "connections/new/oidc/", _oidc_form(provider, scopes='openid "quoted"'))

    assert no_secret.status_code == 400
    assert bad_scope.status_code == 400
    assert "not a valid scope" in bad_scope.content.decode()
    assert not SSOConnection.objects.filter(setup_pending=False).exists()  # only the page's empty draft


# --- status, delete ------------------------------------------------------------------------------


def test_disable_and_delete(cast, admin) -> None:
    connection = saml_connection(cast.acme)

    blocked = admin.post(f"{BASE}connections/{connection.pk}/delete/", follow=True)
    assert "Disable the connection before deleting it" in blocked.content.decode()
    admin.post(f"{BASE}connections/{connection.pk}/disable/")
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.DISABLED
    # re-enabling a once-tested connection needs no new test, only the admin's own earlier sign-in and a confirmation
    SSOConnection.objects.filter(pk=connection.pk).update(self_tested={str(cast.admin.pk): connection.trust_epoch})
    admin.post(f"{BASE}connections/{connection.pk}/enable/", {"confirm": "on"})
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.ENABLED
    admin.post(f"{BASE}connections/{connection.pk}/disable/")

    response = admin.post(f"{BASE}connections/{connection.pk}/delete/")

    assert response.status_code == 302
    assert not SSOConnection.objects.filter(pk=connection.pk).exists()
    assert events("sso.connection_delete", tenant=cast.acme)


# --- domains ---------------------------------------------------------------------------------------


def test_claim_domain_shows_the_txt_token(cast, admin) -> None:
    response = admin.post(BASE + "domains/", {"domain": "  ACME.example. "})

    assert response.status_code == 302
    claim = VerifiedDomain.objects.get(tenant=cast.acme)
    assert claim.domain == "acme.example"
    assert claim.verified_at is None
    assert len(claim.dns_token) == 32
    html = admin.get(BASE + "domains/").content.decode()
    assert f"bastion-verify={claim.dns_token}" in html
    assert "Waiting for DNS record" in html


def test_a_domain_belongs_to_one_tenant(cast) -> None:
    # A pending claim blocks nobody (#9, squatting): Globex may claim too; the first proof wins.
    https_client(cast.admin).post(BASE + "domains/", {"domain": "acme.example"})
    assert (
        https_client(cast.globex_owner).post("/t/globex/settings/sso/domains/", {"domain": "acme.example"}).status_code
        == 302
    )
    acme_claim = VerifiedDomain.objects.get(domain="acme.example", tenant=cast.acme)
    services.domain_verify(domain=acme_claim, actor=cast.staff, reason="ticket 9")

    response = https_client(cast.globex_owner).post("/t/globex/settings/sso/domains/", {"domain": "acme.example"})

    assert response.status_code == 400
    assert "already verified for another organisation" in response.content.decode()
    assert "Acme" not in response.content.decode()
    assert VerifiedDomain.objects.get(domain="acme.example").tenant == cast.acme


@pytest.mark.parametrize(
    "value", ["gmail.com", "not a domain", "localhost", "ada@acme.example", "*.acme.example", "1.2.3.4"]
)
def test_unclaimable_domains(cast, admin, value) -> None:
    response = admin.post(BASE + "domains/", {"domain": value})

    assert response.status_code == 400
    assert not VerifiedDomain.objects.exists()


def test_release_own_domain_only(cast, admin) -> None:
    mine = verify_domain(cast.acme, "acme.example")
    theirs = verify_domain(cast.globex, "globex.example")

    assert admin.post(f"{BASE}domains/{theirs.pk}/release/").status_code == 404
    assert admin.post(f"{BASE}domains/{mine.pk}/release/").status_code == 302
    assert list(VerifiedDomain.objects.values_list("domain", flat=True)) == ["globex.example"]


def test_staff_verify_domain(cast) -> None:
    claim = VerifiedDomain.objects.create(tenant=cast.acme, domain="acme.example", dns_token="x" * 32)

    assert https_client(cast.owner).get("/sso/staff/domains/").status_code == 404
    assert https_client(cast.owner).post(f"/sso/staff/domains/{claim.pk}/verify/").status_code == 404
    staff = https_client(cast.staff)
    page = staff.get("/sso/staff/domains/")
    assert page.status_code == 200
    assert "acme.example" in page.content.decode()

    staff.post(f"/sso/staff/domains/{claim.pk}/verify/")  # no reason: the override is refused
    claim.refresh_from_db()
    assert claim.verified_at is None
    assert staff.post(f"/sso/staff/domains/{claim.pk}/verify/", {"reason": "ticket 42"}).status_code == 302

    claim.refresh_from_db()
    assert claim.verified_at is not None
    assert claim.verified_by == cast.staff
    assert claim.verified_method == "staff"
    assert [e.metadata["reason"] for e in events("sso.domain_verify", tenant=cast.acme)] == ["ticket 42"]
    assert [e for e in events("sso.domain_verify") if e.tenant_id is None]


# --- policy and groups ---------------------------------------------------------------------------


def test_policy_form_saves_and_audits(cast, admin) -> None:
    response = admin.post(
        BASE + "policy/",
        {
            "mfa_required_local": "on",
            "mfa_required_admin_sso": "on",
            "session_absolute_minutes": 120,
            "session_idle_minutes": 15,
        },
    )

    assert response.status_code == 302
    policy = SignInPolicy.objects.get(tenant=cast.acme)
    assert (policy.mfa_required_admin_sso, policy.session_absolute_minutes, policy.session_idle_minutes) == (
        True,
        120,
        15,
    )
    assert events("sso.policy_update", tenant=cast.acme)


def test_policy_idle_longer_than_absolute_is_refused(cast, admin) -> None:
    response = admin.post(BASE + "policy/", {"session_absolute_minutes": 30, "session_idle_minutes": 60})

    assert response.status_code == 400
    assert not SignInPolicy.objects.filter(tenant=cast.acme).exists()


def test_groups_page_shows_mapping_and_links_to_roles(cast, admin) -> None:
    from apps.access.services import builtin_roles_seed

    builtin_roles_seed(tenant=cast.acme)
    role = Role.objects.for_tenant(cast.acme).get(key="analyst")
    RoleBinding.objects.create(tenant=cast.acme, role=role, idp_group="data-team")
    from apps.tenants.models import Membership

    Membership.objects.filter(tenant=cast.acme, user=cast.member).update(idp_groups=["data-team", "unmapped-team"])

    html = admin.get(BASE + "groups/").content.decode()

    assert "data-team" in html
    assert f"/t/acme/access/roles/{role.pk}/" in html
    assert "unmapped-team" in html
