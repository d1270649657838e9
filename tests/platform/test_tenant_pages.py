"""Platform area: staff only; tenant list, create, detail, suspend and reactivate."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.tenants.models import Membership, Tenant
from tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db

PAGES = [
    ("get", "/platform/"),
    ("get", "/platform/tenants/new/"),
    ("post", "/platform/tenants/new/"),
    ("get", "/platform/tenants/acme/"),
    ("get", "/platform/tenants/acme/suspend/"),
    ("post", "/platform/tenants/acme/suspend/"),
    ("get", "/platform/tenants/acme/reactivate/"),
    ("post", "/platform/tenants/acme/reactivate/"),
    ("get", "/platform/audit/"),
]


def _rows(response) -> str:
    body = response.content.decode()
    return body[body.index("<tbody>") : body.index("</tbody>")]


# --- access --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_anonymous_goes_to_sign_in(cast, client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(("method", "path"), PAGES)
@pytest.mark.parametrize("who", ["owner", "admin", "outsider", "globex_owner"])
def test_non_staff_get_404(cast, client_for, method, path, who):
    response = getattr(client_for(getattr(cast, who)), method)(path, {"reason": "x", "slug": "evil", "name": "E"})
    assert response.status_code == 404
    assert not Tenant.objects.filter(slug="evil").exists()
    cast.acme.refresh_from_db()
    assert not cast.acme.is_suspended


def test_staff_sees_platform_link_and_audit_nav(cast, client_for):
    page = client_for(cast.staff).get("/platform/").content.decode()
    assert 'href="/platform/audit/"' in page
    assert "Audit log" in page


# --- list ------------------------------------------------------------------------------------------


def test_list_shows_member_counts(cast, client_for):
    MembershipFactory(tenant=cast.acme, status="invited", joined_at=None)
    MembershipFactory(tenant=cast.acme, status="disabled")
    rows = _rows(client_for(cast.staff).get("/platform/"))
    acme_row = rows[rows.index("Acme Corp") :].split("</tr>")[0]
    # 4 active (owner, admin, member, viewer), 1 invited; the disabled one counts in neither.
    assert "<td>4</td>" in acme_row
    assert "<td>1</td>" in acme_row
    globex_row = rows[rows.index("Globex") :].split("</tr>")[0]
    assert "<td>1</td>" in globex_row


def test_search_and_status_filter(cast, client_for):
    TenantFactory(slug="initech", name="Initech", status="suspended")
    client = client_for(cast.staff)
    rows = _rows(client.get("/platform/", {"q": "glob"}))
    assert "Globex" in rows
    assert "Acme" not in rows
    rows = _rows(client.get("/platform/", {"status": "suspended"}))
    assert "Initech" in rows
    assert "Acme" not in rows
    rows = _rows(client.get("/platform/", {"q": "INITECH"}))
    assert "Initech" in rows


@pytest.mark.parametrize("params", [{"status": "deleted"}, {"q": "x" * 500}, {"page": "zz"}, {"page": "10**9"}])
def test_bad_list_parameters_never_500(cast, client_for, params):
    assert client_for(cast.staff).get("/platform/", params).status_code == 200


def test_list_paginates(cast, client_for):
    for i in range(30):
        TenantFactory(slug=f"t{i:02d}", name=f"Tenant {i:02d}")
    client = client_for(cast.staff)
    assert "Page 1 of 2" in client.get("/platform/").content.decode()
    second = _rows(client.get("/platform/", {"page": "2"}))
    assert "Tenant 29" in second


def test_htmx_list_returns_the_table_only(cast, client_for):
    body = client_for(cast.staff).get("/platform/", {"q": "acme"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in body
    assert "Acme Corp" in body


def _count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_tenant_list_query_count_is_flat(cast, client_for):
    client = client_for(cast.staff)
    _count_queries(client, "/platform/")
    small = _count_queries(client, "/platform/")
    for i in range(20):
        tenant = TenantFactory(slug=f"bulk-{i}", name=f"Bulk {i}")
        MembershipFactory.create_batch(3, tenant=tenant)
    assert _count_queries(client, "/platform/") == small


def test_tenant_detail_query_count_is_flat(cast, client_for):
    client = client_for(cast.staff)
    _count_queries(client, "/platform/tenants/acme/")
    small = _count_queries(client, "/platform/tenants/acme/")
    MembershipFactory.create_batch(30, tenant=cast.acme)
    assert _count_queries(client, "/platform/tenants/acme/") == small


# --- create -------------------------------------------------------------------------------------------


def test_create_tenant_invites_owner(cast, client_for, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(cast.staff).post(
            "/platform/tenants/new/", {"name": "Initech", "slug": "Initech", "owner_email": "Bill@Initech.example"}
        )
    assert response.status_code == 302
    assert response["Location"] == "/platform/tenants/initech/"
    tenant = Tenant.objects.get(slug="initech")
    owner = Membership.objects.for_tenant(tenant).get()
    assert (owner.user.email, owner.role, owner.status, owner.invited_by) == (
        "bill@initech.example",
        "owner",
        "invited",
        cast.staff,
    )
    assert mail.outbox[-1].to == ["bill@initech.example"]
    assert AuditEvent.objects.filter(tenant=None, action="tenant.create", actor_id=str(cast.staff.pk)).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"slug": "acme"}, "already taken"),
        ({"slug": "ACME"}, "already taken"),
        ({"slug": "platform"}, "reserved"),
        ({"slug": "api"}, "reserved"),
        ({"slug": "a..b"}, "lowercase letters"),
        ({"slug": "-start"}, "lowercase letters"),
        ({"slug": "end-"}, "lowercase letters"),
        ({"slug": "has space"}, "lowercase letters"),
        ({"slug": "ünï"}, "lowercase letters"),
        ({"slug": "a" * 41}, "at most 40"),
        ({"slug": ""}, "required"),
        ({"name": "N" * 121}, "at most 120"),
        ({"owner_email": "nope"}, "complete e-mail address"),
        ({"owner_email": "a" * 250 + "@x.example"}, "at most 254"),
    ],
)
def test_create_form_errors(cast, client_for, data, message):
    payload = {"name": "New Co", "slug": "newco", "owner_email": "boss@newco.example", **data}
    response = client_for(cast.staff).post("/platform/tenants/new/", payload)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Tenant.objects.count() == 2
    assert not Membership.objects.filter(user__email=payload["owner_email"]).exists()


# --- detail, suspend, reactivate ------------------------------------------------------------------------


def test_detail_shows_members_and_status(cast, client_for):
    page = client_for(cast.staff).get("/platform/tenants/acme/").content.decode()
    for person in ("owner", "admin", "member", "viewer"):
        assert f"{person}@acme.example" in page
    assert "owner@globex.example" not in page
    assert "Suspend…" in page


@pytest.mark.parametrize("slug", ["nope", "UPPER", "a..b", "x" * 300])
def test_detail_unknown_or_malformed_slug_is_404(cast, client_for, slug):
    client = client_for(cast.staff)
    assert client.get(f"/platform/tenants/{slug}/").status_code == 404
    assert client.post(f"/platform/tenants/{slug}/suspend/", {"reason": "x"}).status_code == 404


def test_suspend_needs_a_reason(cast, client_for):
    client = client_for(cast.staff)
    assert client.get("/platform/tenants/acme/suspend/").status_code == 200
    response = client.post("/platform/tenants/acme/suspend/", {"reason": "  "})
    assert response.status_code == 400
    assert "required" in response.content.decode()
    response = client.post("/platform/tenants/acme/suspend/", {"reason": "r" * 501})
    assert response.status_code == 400
    cast.acme.refresh_from_db()
    assert not cast.acme.is_suspended


def test_suspend_and_reactivate_are_audited(cast, client_for):
    client = client_for(cast.staff)
    response = client.post("/platform/tenants/acme/suspend/", {"reason": "Invoice overdue"})
    assert response.status_code == 302
    cast.acme.refresh_from_db()
    assert cast.acme.is_suspended
    assert cast.acme.suspended_reason == "Invoice overdue"
    assert "Invoice overdue" in client.get("/platform/tenants/acme/").content.decode()
    # Members now see the banner.
    assert "This tenant is suspended" in client_for(cast.member).get("/t/acme/").content.decode()

    again = client.post("/platform/tenants/acme/suspend/", {"reason": "twice"})
    assert again.status_code == 400
    assert "already suspended" in again.content.decode()

    assert client.post("/platform/tenants/acme/reactivate/").status_code == 302
    cast.acme.refresh_from_db()
    assert not cast.acme.is_suspended
    assert client.post("/platform/tenants/acme/reactivate/").status_code == 400

    actions = list(
        AuditEvent.objects.filter(tenant=None, target_id=str(cast.acme.pk))
        .order_by("id")
        .values_list("action", "actor_id", "metadata__reason")
    )
    assert actions == [
        ("tenant.suspend", str(cast.staff.pk), "Invoice overdue"),
        ("tenant.reactivate", str(cast.staff.pk), ""),
    ]
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action__startswith="tenant.").count() == 2
