"""Test sign-ins from the settings page: the admin sees what the IdP sent; nobody is signed in, nothing changes."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.sso.models import ExternalIdentity, SSOConnection
from apps.tenants.models import Membership
from tests.sso import saml_helpers as h
from tests.sso.test_flow_support import (
    attributes,
    events,
    https_client,
    newest_flow,
    post_acs,
    relay_state,
    saml_connection,
    signed_in_user_id,
    signed_saml_response,
    verify_domain,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(cast) -> SSOConnection:
    verify_domain(cast.acme, "acme.example")
    return saml_connection(cast.acme, status=SSOConnection.Status.DRAFT)


def _start_test(client, connection) -> tuple[str, str]:
    response = client.post(f"/t/acme/settings/sso/connections/{connection.pk}/test/")
    assert response.status_code == 302, response.content[:300]
    key, flow = newest_flow(client, connection)
    assert flow["mode"] == "test"
    assert relay_state(response["Location"]) == key
    return key, flow["request_id"]


def test_test_sign_in_reports_and_signs_nobody_in(cast, draft) -> None:
    admin = https_client(cast.admin)
    key, request_id = _start_test(admin, draft)

    response = post_acs(admin, draft, signed_saml_response(draft, request_id), key)

    assert response.status_code == 302
    assert response["Location"] == f"/t/acme/settings/sso/connections/{draft.pk}/test/result/"
    assert signed_in_user_id(admin) == str(cast.admin.pk)  # still the admin
    assert not User.objects.filter(email="ada@acme.example").exists()
    assert not ExternalIdentity.objects.exists()
    assert not Membership.objects.filter(user__email="ada@acme.example").exists()
    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.TESTED
    assert events("auth.sign_in", tenant=cast.acme) == []
    test_event = events("sso.connection_test", tenant=cast.acme)[-1]
    assert test_event.result == "success"

    page = admin.get(response["Location"])

    assert page.status_code == 200
    html = page.content.decode()
    assert "ada@acme.example" in html
    assert "engineering" in html
    assert "admins" in html
    assert "Nobody was signed in" in html
    assert "acme.example is a verified domain" in html


def test_failed_checks_keep_the_connection_a_draft(cast) -> None:
    connection = saml_connection(cast.acme, status=SSOConnection.Status.DRAFT)  # no verified domain
    admin = https_client(cast.admin)
    key, request_id = _start_test(admin, connection)

    response = post_acs(admin, connection, signed_saml_response(connection, request_id), key)
    page = admin.get(response["Location"])

    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.DRAFT
    assert "not a verified domain" in page.content.decode()
    assert events("sso.connection_test", tenant=cast.acme)[-1].result == "failure"


def test_protocol_failure_is_reported_not_raised(cast, draft) -> None:
    admin = https_client(cast.admin)
    key, request_id = _start_test(admin, draft)
    forged = h.encode(h.signed_response(h.spec_for(draft, in_response_to=request_id), keys=h.other_keys()))

    response = post_acs(admin, draft, forged, key)
    page = admin.get(response["Location"])

    assert page.status_code == 200
    assert "signature" in page.content.decode().lower()
    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.DRAFT


def test_test_response_in_another_browser_is_refused(cast, draft) -> None:
    admin = https_client(cast.admin)
    key, request_id = _start_test(admin, draft)
    owner = https_client(cast.owner)  # another browser, another admin

    response = post_acs(owner, draft, signed_saml_response(draft, request_id), key, bastion_resubmit="1")

    assert response.status_code == 403  # no test flow in this browser: a real sign-in through a draft, refused
    assert signed_in_user_id(owner) == str(cast.owner.pk)
    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.DRAFT
    assert not User.objects.filter(email="ada@acme.example").exists()


def test_test_result_needs_sso_manage_when_it_arrives(cast, draft) -> None:
    admin = https_client(cast.admin)
    key, request_id = _start_test(admin, draft)
    Membership.objects.filter(tenant=cast.acme, user=cast.admin).update(role="member")  # demoted meanwhile

    response = post_acs(admin, draft, signed_saml_response(draft, request_id), key)

    assert response.status_code == 403
    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.DRAFT


def test_enable_needs_a_successful_test(cast, draft) -> None:
    admin = https_client(cast.admin)

    refused = admin.post(f"/t/acme/settings/sso/connections/{draft.pk}/enable/", {"confirm": "on"})

    assert "Run a successful test sign-in first" in refused.content.decode()
    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.DRAFT
    key, request_id = _start_test(admin, draft)
    me = {"name_id": "admin@acme.example", "attributes": attributes("admin@acme.example")}
    post_acs(admin, draft, signed_saml_response(draft, request_id, **me), key)

    admin.post(f"/t/acme/settings/sso/connections/{draft.pk}/enable/", {"confirm": "on"})

    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.ENABLED
    enable = events("sso.connection_enable", tenant=cast.acme)[-1]
    assert enable.metadata["before"] == {"status": "tested"}
    assert enable.metadata["after"] == {"status": "enabled", "primary": True}


def test_draft_cannot_be_used_for_real_sign_in(cast, draft) -> None:
    response = https_client().get(f"/sso/start/{draft.public_id}/")

    assert response.status_code == 404


def test_admin_mfa_warning_in_report(cast, draft) -> None:
    from apps.sso.models import SignInPolicy

    SignInPolicy.objects.create(tenant=cast.acme, mfa_required_admin_sso=True)
    admin = https_client(cast.admin)
    key, request_id = _start_test(admin, draft)

    response = post_acs(
        admin,
        draft,
        signed_saml_response(
            draft, request_id, name_id="admin@acme.example", attributes=attributes("admin@acme.example")
        ),
        key,
    )
    html = admin.get(response["Location"]).content.decode()

    assert "admins would be refused" in html
    assert "Already linked" not in html
