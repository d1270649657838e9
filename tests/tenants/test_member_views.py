"""Members page: listing, filters, pagination, invite, role change (htmx and plain), disable, remove."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.tenants.models import Membership
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

MEMBERS = "/t/acme/members/"


def _m(cast, user) -> Membership:
    return Membership.objects.get(tenant=cast.acme, user=user)


def _rows(response) -> str:
    """The table body only (the top bar shows the signed-in user's own e-mail)."""
    body = response.content.decode()
    return body[body.index("<tbody>") : body.index("</tbody>")]


def _url(cast, user, action: str) -> str:
    return f"/t/acme/members/{_m(cast, user).pk}/{action}/"


# --- access --------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in(client, cast):
    response = client.get(MEMBERS)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_outsider_and_other_tenant_member_get_404(cast, client_for):
    assert client_for(cast.outsider).get(MEMBERS).status_code == 404
    assert client_for(cast.globex_owner).get(MEMBERS).status_code == 404


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_every_member_can_list(cast, client_for, role):
    response = client_for(getattr(cast, role)).get(MEMBERS)
    assert response.status_code == 200
    for person in ("owner", "admin", "member", "viewer"):
        assert f"{person}@acme.example" in _rows(response)
    assert "owner@globex.example" not in response.content.decode()


def test_only_managers_see_invite_form_and_row_controls(cast, client_for):
    assert "Send invitation" in client_for(cast.admin).get(MEMBERS).content.decode()
    page = client_for(cast.member).get(MEMBERS).content.decode()
    assert "Send invitation" not in page
    assert "/role/" not in page


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_without_member_manage_get_403_on_actions(cast, client_for, role):
    client = client_for(getattr(cast, role))
    target = _url(cast, cast.viewer if role == "member" else cast.member, "role")
    assert client.get("/t/acme/members/invite/").status_code == 403
    assert client.post("/t/acme/members/invite/", {"email": "x@example.com", "role": "member"}).status_code == 403
    assert client.post(target, {"role": "admin"}).status_code == 403
    assert not Membership.objects.filter(user__email="x@example.com").exists()


# --- filters and pagination --------------------------------------------------------------------


def test_filter_by_role_and_status(cast, client_for):
    MembershipFactory(tenant=cast.acme, user__email="pending@acme.example", status="invited", joined_at=None)
    client = client_for(cast.viewer)
    page = _rows(client.get(MEMBERS, {"role": "viewer"}))
    assert "viewer@acme.example" in page
    assert "member@acme.example" not in page
    page = _rows(client.get(MEMBERS, {"status": "invited"}))
    assert "pending@acme.example" in page
    assert "owner@acme.example" not in page
    page = _rows(client.get(MEMBERS, {"q": "ADMIN@"}))
    assert "admin@acme.example" in page
    assert "viewer@acme.example" not in page


@pytest.mark.parametrize(
    "params",
    [
        {"role": "emperor"},
        {"status": "'; drop table"},
        {"q": "x" * 5000},
        {"page": "abc"},
        {"page": "-1"},
        {"page": "99999"},
        {"page": "9" * 5000},
        {"page": "1.5"},
    ],
)
def test_bad_query_values_never_500(cast, client_for, params):
    response = client_for(cast.viewer).get(MEMBERS, params)
    assert response.status_code == 200


def test_invalid_filter_is_reported(cast, client_for):
    page = client_for(cast.viewer).get(MEMBERS, {"role": "emperor"}).content.decode()
    assert "The filters were not applied" in page


def test_pagination_50_per_page_ordered_by_email(cast, client_for):
    for i in range(55):
        MembershipFactory(tenant=cast.acme, user__email=f"bulk{i:03d}@acme.example")
    client = client_for(cast.viewer)
    first = _rows(client.get(MEMBERS))
    assert "Page 1 of 2" in client.get(MEMBERS).content.decode()
    assert "admin@acme.example" in first
    assert "viewer@acme.example" not in first  # "v" sorts after the 50th row
    last = _rows(client.get(MEMBERS, {"page": "2"}))
    assert "viewer@acme.example" in last
    assert "admin@acme.example" not in last


def test_htmx_filter_returns_only_the_table(cast, client_for):
    response = client_for(cast.viewer).get(MEMBERS, {"role": "owner"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body
    assert "owner@acme.example" in body


def _count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_member_list_query_count_is_flat(cast, client_for):
    client = client_for(cast.owner)
    _count_queries(client, MEMBERS)  # warm caches (permission set, session)
    small = _count_queries(client, MEMBERS)
    for i in range(40):
        MembershipFactory(tenant=cast.acme, user__email=f"more{i}@acme.example", invited_by=cast.owner)
    large = _count_queries(client, MEMBERS)
    assert large == small


# --- invite --------------------------------------------------------------------------------------


def test_invite_by_admin(cast, client_for, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(cast.admin).post(
            "/t/acme/members/invite/", {"email": "New.Person@Example.com", "role": "viewer"}
        )
    assert response.status_code == 302
    assert response["Location"] == MEMBERS
    membership = Membership.objects.get(tenant=cast.acme, user__email="new.person@example.com")
    assert (membership.role, membership.status, membership.invited_by) == ("viewer", "invited", cast.admin)
    assert mail.outbox[0].to == ["new.person@example.com"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "a" * 250 + "@example.com", "role": "member"}, "at most 254"),
        ({"email": "not-an-address", "role": "member"}, "complete e-mail address"),
        ({"email": "x@example.com", "role": "owner"}, "roles you are allowed"),
        ({"email": "x@example.com", "role": "emperor"}, "roles you are allowed"),
        ({"email": "", "role": "member"}, "required"),
    ],
)
def test_invite_form_errors(cast, client_for, data, message):
    response = client_for(cast.admin).post("/t/acme/members/invite/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Membership.objects.filter(user__email=data["email"]).exists()


def test_invite_existing_member_shows_plain_error(cast, client_for):
    response = client_for(cast.admin).post("/t/acme/members/invite/", {"email": cast.member.email, "role": "member"})
    assert response.status_code == 400
    assert "already a member" in response.content.decode()


# --- role change ---------------------------------------------------------------------------------


def test_role_change_htmx_returns_the_row(cast, client_for):
    url = _url(cast, cast.member, "role")
    response = client_for(cast.admin).post(url, {"role": "viewer"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith("<tr")
    assert "is now viewer" in body
    assert _m(cast, cast.member).role == "viewer"
    event = AuditEvent.objects.for_tenant(cast.acme).get(action="member.role_change")
    assert event.metadata["before"]["role"] == "member"
    assert event.metadata["after"]["role"] == "viewer"


def test_role_change_plain_post_redirects(cast, client_for):
    response = client_for(cast.admin).post(_url(cast, cast.member, "role"), {"role": "admin"})
    assert response.status_code == 302
    assert _m(cast, cast.member).role == "admin"


def test_role_change_get_shows_fallback_page(cast, client_for):
    response = client_for(cast.admin).get(_url(cast, cast.member, "role"))
    assert response.status_code == 200
    assert "Change the role of member@acme.example" in response.content.decode()


def test_role_change_refused_is_explained_in_the_row(cast, client_for):
    MembershipFactory(tenant=cast.acme, role="owner")  # so the last-owner rule is not what refuses
    client = client_for(cast.admin)
    response = client.post(_url(cast, cast.admin, "role"), {"role": "viewer"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "your own membership" in response.content.decode()
    response = client.post(_url(cast, cast.owner, "role"), {"role": "viewer"})
    assert response.status_code == 400
    assert "Only an owner" in response.content.decode()
    assert (_m(cast, cast.admin).role, _m(cast, cast.owner).role) == ("admin", "owner")


def test_admin_cannot_grant_owner_through_the_form(cast, client_for):
    response = client_for(cast.admin).post(_url(cast, cast.member, "role"), {"role": "owner"})
    assert response.status_code == 400
    assert _m(cast, cast.member).role == "member"


def test_last_owner_cannot_step_down(cast, client_for):
    response = client_for(cast.owner).post(_url(cast, cast.owner, "role"), {"role": "admin"})
    assert response.status_code == 400
    assert "last active owner" in response.content.decode()
    assert _m(cast, cast.owner).role == "owner"


# --- disable, enable, resend, remove ----------------------------------------------------------------


def test_disable_then_enable(cast, client_for):
    client = client_for(cast.admin)
    assert client.post(_url(cast, cast.member, "disable")).status_code == 302
    assert _m(cast, cast.member).status == "disabled"
    assert client_for(cast.member).get("/t/acme/").status_code == 404  # access ends at once
    response = client.post(_url(cast, cast.member, "enable"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "enabled again" in response.content.decode()
    assert _m(cast, cast.member).status == "active"


def test_disable_needs_post(cast, client_for):
    assert client_for(cast.admin).get(_url(cast, cast.member, "disable")).status_code == 405


def test_resend_invitation(cast, client_for, django_capture_on_commit_callbacks):
    invited = MembershipFactory(tenant=cast.acme, user__email="wait@acme.example", status="invited", joined_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(cast.admin).post(f"/t/acme/members/{invited.pk}/resend/")
    assert response.status_code == 302
    assert mail.outbox[0].to == ["wait@acme.example"]


def test_remove_asks_then_removes(cast, client_for):
    client = client_for(cast.admin)
    url = _url(cast, cast.viewer, "remove")
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Remove viewer@acme.example?" in confirm.content.decode()
    assert client.post(url).status_code == 302
    assert not Membership.objects.filter(tenant=cast.acme, user=cast.viewer).exists()
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="member.remove").count() == 1


def test_remove_last_owner_refused(cast, client_for):
    second_admin = MembershipFactory(tenant=cast.acme, role="owner").user
    # second owner removes the first: allowed; then the first cannot be the one to remove the last.
    response = client_for(second_admin).post(_url(cast, cast.owner, "remove"))
    assert response.status_code == 302
    response = client_for(second_admin).post(_url(cast, second_admin, "remove"))
    assert response.status_code == 400
    assert "last active owner" in response.content.decode()
