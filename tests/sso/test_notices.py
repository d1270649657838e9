"""Notice e-mails from the metadata refresh: certificate changed or expiring, metadata failing (once a day)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from apps.sso.models import SSOConnection
from apps.sso.saml import binding as saml_binding
from apps.sso.saml.metadata import certificate_expiry, certificate_fingerprint, parse_certificate
from apps.sso.services.metadata_refresh import connection_metadata_refresh
from apps.sso.types import SSOConfigError
from apps.tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory
from tests.sso import saml_helpers as h

pytestmark = pytest.mark.django_db

URL = "https://idp.example.test/metadata"


class FakeFetch:
    """Stands in for ``fetch_idp_metadata``: returns ``xml`` or raises ``error``."""

    def __init__(self) -> None:
        self.xml = h.idp_metadata_xml()
        self.error = ""

    def __call__(self, url: str) -> str:
        if self.error:
            raise SSOConfigError(self.error)
        return self.xml


@pytest.fixture
def fetch(monkeypatch) -> FakeFetch:
    fake = FakeFetch()
    monkeypatch.setattr(saml_binding, "fetch_idp_metadata", fake)
    return fake


def _connection(tenant) -> SSOConnection:
    """A connection of ``tenant`` trusting the *other* certificate; its metadata has the real one."""
    connection = h.make_connection(tenant=tenant, metadata_url=URL, idp_x509_certs=[h.other_keys().cert_pem])
    if tenant is None:
        SSOConnection.objects.filter(pk=connection.pk).update(tenant=None)
        connection.refresh_from_db()
    return connection


def _refresh(connection: SSOConnection, capture) -> str:
    with capture(execute=True):
        return connection_metadata_refresh(connection_id=connection.pk)


def _to(messages) -> list[str]:
    return sorted(address for message in messages for address in message.to)


def test_certificate_change_mails_the_tenants_active_owners_and_admins(
    cast, fetch, django_capture_on_commit_callbacks
) -> None:
    disabled_admin = UserFactory(email="gone@acme.example")
    MembershipFactory(tenant=cast.acme, user=disabled_admin, role="admin", status=Membership.Status.DISABLED)
    connection = _connection(cast.acme)

    assert _refresh(connection, django_capture_on_commit_callbacks) == "updated"

    assert _to(mail.outbox) == ["admin@acme.example", "owner@acme.example"]
    message = mail.outbox[0]
    assert message.subject == "The signing certificate of Okta changed"
    assert certificate_fingerprint(parse_certificate(h.idp_keys().cert_pem)) in message.body
    assert certificate_fingerprint(parse_certificate(h.other_keys().cert_pem)) in message.body
    assert "Acme Corp" in message.body
    assert f"/t/acme/settings/sso/connections/{connection.pk}/" in message.body
    assert "security incident" in message.body


def test_unchanged_metadata_sends_nothing(cast, fetch, django_capture_on_commit_callbacks) -> None:
    connection = _connection(cast.acme)
    _refresh(connection, django_capture_on_commit_callbacks)
    mail.outbox.clear()

    assert _refresh(connection, django_capture_on_commit_callbacks) == "unchanged"

    assert mail.outbox == []


def test_expiring_certificate_is_announced_once_a_day(cast, fetch, django_capture_on_commit_callbacks) -> None:
    soon = h.make_key_pair("soon.example.test", not_after=datetime.now(UTC) + timedelta(days=10))
    fetch.xml = h.idp_metadata_xml(certs=[soon.cert_base64, h.idp_keys().cert_base64])
    connection = _connection(cast.acme)

    _refresh(connection, django_capture_on_commit_callbacks)
    _refresh(connection, django_capture_on_commit_callbacks)

    expiring = [m for m in mail.outbox if "expires soon" in m.subject]
    assert _to(expiring) == ["admin@acme.example", "owner@acme.example"]
    body = expiring[0].body
    assert certificate_fingerprint(parse_certificate(soon.cert_pem)) in body
    not_after = certificate_expiry(parse_certificate(soon.cert_pem)).date().isoformat()
    assert f"expires on {not_after} (" in body
    assert any(f"({days} days from now)" in body for days in (9, 10))
    assert len([m for m in mail.outbox if "changed" in m.subject]) == 2  # the first refresh only


def test_metadata_failure_is_announced_at_most_once_a_day(cast, fetch, django_capture_on_commit_callbacks) -> None:
    connection = _connection(cast.acme)
    fetch.error = "The metadata URL returned an HTML page, not SAML metadata."

    assert _refresh(connection, django_capture_on_commit_callbacks) == "failed"
    assert _refresh(connection, django_capture_on_commit_callbacks) == "failed"

    assert _to(mail.outbox) == ["admin@acme.example", "owner@acme.example"]
    assert mail.outbox[0].subject == "Bastion cannot download the metadata of Okta"
    assert "HTML page" in mail.outbox[0].body
    assert URL in mail.outbox[0].body

    # the next day, another notice
    connection.refresh_from_db()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    SSOConnection.objects.filter(pk=connection.pk).update(
        config={**connection.config, "metadata_error_notified": yesterday}
    )
    mail.outbox.clear()
    _refresh(connection, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2


def test_platform_connection_notices_go_to_active_staff(cast, fetch, django_capture_on_commit_callbacks) -> None:
    UserFactory(email="former@bastion.example", is_staff=True, is_active=False)
    connection = _connection(None)

    _refresh(connection, django_capture_on_commit_callbacks)

    assert _to(mail.outbox) == ["staff@bastion.example"]
    assert "the Bastion platform" in mail.outbox[0].body
    assert f"/platform/sso/connections/{connection.pk}/" in mail.outbox[0].body


def test_no_mail_before_the_refresh_commits(cast, fetch, django_capture_on_commit_callbacks) -> None:
    connection = _connection(cast.acme)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        connection_metadata_refresh(connection_id=connection.pk)

    assert mail.outbox == []
    assert callbacks  # the notice waits for the commit
