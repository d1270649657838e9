"""Break-glass in a real browser (#11, items 1, 2 and 6): a policy page, a request, the approver's badge,
the approval, the elevated person's banner with its countdown and "End now".

Run with SCREENSHOT_DIR=… to keep the pictures.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.access.models import Role
from apps.access.services import builtin_roles_seed
from apps.audit.services import Actor, record
from apps.breakglass import services
from apps.breakglass.models import Elevation
from apps.tenants.models import Membership
from tests.e2e.helpers import shot, signed_in_context
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _signed_in_page(browser, live_server, user, errors: list[str]):
    page = signed_in_context(browser, live_server, user).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A CSP refusal shows up as a console error: the countdown must run from the static file.
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("dialog", lambda dialog: dialog.accept())  # "End now" asks first (data-confirm)
    return page


def test_request_approve_banner_and_end_now(live_server, browser, screenshot_dir) -> None:
    acme = TenantFactory(slug="acme", name="Acme Corp")
    builtin_roles_seed(tenant=acme)
    owner_user = UserFactory(email="olivia@acme.example", full_name="Olivia Owner")
    owner = MembershipFactory(tenant=acme, user=owner_user, role=Membership.Role.OWNER)
    approver = UserFactory(email="ada@acme.example", full_name="Ada Approver")
    MembershipFactory(tenant=acme, user=approver, role="approver")
    requester = UserFactory(email="max@acme.example", full_name="Max Member")
    MembershipFactory(tenant=acme, user=requester, role=Membership.Role.MEMBER)
    services.policy_create(
        tenant=acme,
        actor=Membership.objects.select_related("tenant", "user").get(pk=owner.pk),
        name="Incident responder",
        role=Role.objects.get(tenant=acme, key="developer", builtin=True),
        approvals_required=1,
        max_duration_minutes=120,
        incident_required=True,
        approver_roles=["approver"],
    )
    errors: list[str] = []
    base = f"{live_server.url}/t/acme/break-glass"

    # The owner's policy pages.
    page = _signed_in_page(browser, live_server, owner_user, errors)
    page.goto(f"{base}/policies/")
    expect(page.get_by_role("cell", name="Incident responder")).to_be_visible()
    shot(page, screenshot_dir, "breakglass-01-policies")
    page.get_by_role("link", name="New policy").click()
    expect(page.get_by_text("Distinct approvers, 1 to 3")).to_be_visible()
    shot(page, screenshot_dir, "breakglass-02-policy-form")

    # The member asks.
    member_page = _signed_in_page(browser, live_server, requester, errors)
    member_page.goto(f"{base}/")
    shot(member_page, screenshot_dir, "breakglass-03-request")
    member_page.fill("input[name=duration_minutes]", "37")
    member_page.fill(
        "textarea[name=justification]", "Checkout failing for EU customers; need to read the orders dataset"
    )
    member_page.fill("input[name=incident_ref]", "INC-123")
    member_page.get_by_role("button", name="Request").click()
    expect(member_page.get_by_text(re.compile(r"Request #\d+ sent to the approvers"))).to_be_visible()

    # The approver sees the badge on any page and approves.
    approver_page = _signed_in_page(browser, live_server, approver, errors)
    approver_page.goto(f"{live_server.url}/t/acme/")
    badge = approver_page.get_by_label("1 request waiting for your approval")
    expect(badge).to_have_text("1")
    approver_page.get_by_role("link", name=re.compile("Break-glass")).click()
    shot(approver_page, screenshot_dir, "breakglass-04-approvals")
    approver_page.get_by_role("button", name="Approve").click()
    expect(approver_page.get_by_text(re.compile(r"Request #\d+ approved"))).to_be_visible()
    expect(approver_page.get_by_label("1 request waiting for your approval")).to_have_count(0)

    # The elevated member sees the banner on every page, with the time left, and ends it.
    member_page.goto(f"{live_server.url}/t/acme/")
    banner = member_page.locator(".banner-elevation")
    expect(banner).to_contain_text("you hold the role Developer")
    expect(banner).to_contain_text(re.compile(r"until \d\d:\d\d UTC"))
    expect(banner.locator("[data-elevation-left]")).to_have_text(re.compile(r"^3[67] min left$"))
    shot(member_page, screenshot_dir, "breakglass-05-banner")
    banner.get_by_role("button", name="End now").click()
    expect(member_page.get_by_text(re.compile(r"Elevation #\d+ ended"))).to_be_visible()
    expect(member_page.locator(".banner-elevation")).to_have_count(0)
    shot(member_page, screenshot_dir, "breakglass-06-ended")

    assert Elevation.objects.get().status == Elevation.Status.ENDED
    assert errors == []


def _acme_with_an_incident():
    """Acme: owner, approver, requester; an active elevation for INC-123 with some of the requester's work."""
    acme = TenantFactory(slug="acme", name="Acme Corp")
    builtin_roles_seed(tenant=acme)
    people = {}
    for key, email, name, role in (
        ("owner", "olivia@acme.example", "Olivia Owner", Membership.Role.OWNER),
        ("approver", "ada@acme.example", "Ada Approver", "approver"),
        ("requester", "max@acme.example", "Max Member", Membership.Role.MEMBER),
    ):
        user = UserFactory(email=email, full_name=name)
        MembershipFactory(tenant=acme, user=user, role=role)
        people[key] = Membership.objects.select_related("tenant", "user").get(user=user)
    policy = services.policy_create(
        tenant=acme,
        actor=people["owner"],
        name="Incident responder",
        role=Role.objects.get(tenant=acme, key="developer", builtin=True),
        approvals_required=1,
        max_duration_minutes=120,
        incident_required=True,
        approver_roles=["approver"],
    )
    past = services.elevation_request(
        policy=policy,
        requester=people["requester"],
        duration_minutes=20,
        justification="Yesterday's outage",
        incident_ref="INC-100",
    )
    services.elevation_approve(tenant=acme, elevation_id=past.pk, approver=people["approver"], comment="ok")
    services.elevation_end(tenant=acme, elevation_id=past.pk, actor=people["requester"])
    elevation = services.elevation_request(
        policy=policy,
        requester=people["requester"],
        duration_minutes=37,
        justification="Checkout failing for EU customers; need to write the orders dataset",
        incident_ref="INC-123",
    )
    services.elevation_approve(tenant=acme, elevation_id=elevation.pk, approver=people["approver"], comment="Go")
    for action, target in (("dataset.write", "orders"), ("tool.execute", "refund-tool")):
        record(action, tenant=acme, actor=Actor.for_user(people["requester"].user), target_type=target, target_id=1)
    return acme, people, elevation


def test_review_pages_incident_webhook_and_closing_an_incident(live_server, browser, screenshot_dir) -> None:
    _, people, elevation = _acme_with_an_incident()
    errors: list[str] = []
    base = f"{live_server.url}/t/acme/break-glass"

    # The owner reviews: the list, then the elevation with its timeline and the person's events.
    owner = _signed_in_page(browser, live_server, people["owner"].user, errors)
    owner.goto(f"{live_server.url}/t/acme/")
    card = owner.locator("section", has=owner.get_by_role("heading", name="Break-glass"))
    expect(card).to_contain_text("1 active elevation")
    owner.goto(f"{base}/elevations/")
    expect(owner.get_by_role("link", name=f"#{elevation.pk}")).to_be_visible()
    shot(owner, screenshot_dir, "bgreview-elevations")
    owner.get_by_role("link", name="Active", exact=True).click()
    expect(owner.locator("#elevation-results tbody tr")).to_have_count(1)
    owner.get_by_role("link", name=f"#{elevation.pk}").click()
    expect(owner.get_by_role("heading", name=re.compile(f"Elevation #{elevation.pk}"))).to_be_visible()
    events = owner.locator("#elevation-events")
    expect(events).to_contain_text("dataset.write")
    expect(events).to_contain_text("tool.execute")
    expect(owner.get_by_role("link", name="Export CSV")).to_have_attribute("href", re.compile(r"events\.csv$"))
    shot(owner, screenshot_dir, "bgreview-elevation-detail")

    # The owner enables the incident webhook: the secret is shown once.
    owner.goto(f"{base}/incidents/webhook/")
    owner.get_by_role("button", name="Enable the incident webhook").click()
    secret = owner.locator("#webhook-secret").inner_text()
    assert secret.startswith("bgwh_")
    shot(owner, screenshot_dir, "bgreview-incident-settings")
    owner.goto(f"{base}/incidents/webhook/")
    expect(owner.locator("#webhook-secret")).to_have_count(0)
    assert secret not in owner.content()

    # The elevated member's banner counts down with the clock (static/js/bastion.js, under the CSP).
    member = _signed_in_page(browser, live_server, people["requester"].user, errors)
    member.clock.install()
    member.goto(f"{live_server.url}/t/acme/")
    left = member.locator(".banner-elevation [data-elevation-left]")
    expect(left).to_have_text(re.compile(r"^3[67] min left$"))
    member.clock.fast_forward("10:00")
    expect(left).to_have_text(re.compile(r"^2[67] min left$"))

    # The approver closes the incident from the console: the elevation ends at once.
    approver = _signed_in_page(browser, live_server, people["approver"].user, errors)
    approver.goto(f"{base}/incidents/")
    expect(approver.get_by_role("cell", name="INC-123", exact=True)).to_be_visible()
    shot(approver, screenshot_dir, "bgreview-incidents")
    approver.get_by_role("button", name="Close incident INC-123").click()
    expect(approver.get_by_text("Incident INC-123 closed: 1 elevation ended")).to_be_visible()
    member.goto(f"{live_server.url}/t/acme/")
    expect(member.locator(".banner-elevation")).to_have_count(0)

    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ENDED
    assert errors == []
