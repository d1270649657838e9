"""Demo break-glass data for Acme (#11, item 9): the "Incident responder" policy and one past elevation.

Everything goes through the services, so the audit log holds the same events as
real use. The past elevation is replayed on its real clock with time-machine
(a dev dependency, always installed by scripts/bootstrap.sh): Dana Developer
asked two days ago for incident INC-2041, the owner approved four minutes
later, Dana used the role (she re-described the support-tickets dataset, which
needs dataset.manage she does not normally hold) and ended it early. Without
time-machine the same story is played now.

The role is "Incident admin": Admin without role.manage, member.manage and
sso.manage. A policy granting Admin itself would need two approvals (the rule
of issue #11, item 1, for roles that change who may do what), and the demo asks
for one approval by an Owner.

Idempotent: nothing is created when the policy exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.utils import timezone

from apps.access import selectors as access_selectors
from apps.access import services as access_services
from apps.access.decisions import can
from apps.access.permissions import BUILTIN_ROLES
from apps.breakglass import selectors as breakglass_selectors
from apps.breakglass import services as breakglass_services
from apps.catalog import selectors as catalog_selectors
from apps.catalog import services as catalog_services
from apps.tenants import selectors as tenant_selectors

POLICY = "Incident responder"
ROLE_KEY = "incident-admin"
INCIDENT = "INC-2041"


@contextlib.contextmanager
def _at(moment: datetime) -> Iterator[None]:
    """Run the block with the clock at ``moment`` (and ticking), when time-machine is installed."""
    try:
        import time_machine
    except ImportError:  # pragma: no cover - bootstrap installs it; the story then happens now
        yield
        return
    with time_machine.travel(moment, tick=True):
        yield


def seed_breakglass(*, slug: str = "acme") -> list[str]:
    """Create the demo policy and past elevation in tenant ``slug``; returns what was created."""
    tenant = tenant_selectors.tenant_get(slug=slug)
    if tenant is None or any(p.name == POLICY for p in breakglass_selectors.policy_list(tenant=tenant)):
        return []
    owner = tenant_selectors.membership_for_decision(tenant=tenant, email=f"owner@{slug}.example")
    dev = tenant_selectors.membership_for_decision(tenant=tenant, email=f"dev@{slug}.example")
    if owner is None or dev is None:
        return []
    role = next((r for r in access_selectors.role_list(tenant=tenant) if r.key == ROLE_KEY), None)
    if role is None:
        role = access_services.role_create(
            tenant=tenant,
            key=ROLE_KEY,
            name="Incident admin",
            description="Admin for incidents: everything an Admin does except changing roles, members and SSO.",
            permissions=sorted(BUILTIN_ROLES["admin"].permissions - breakglass_services.TWO_PERSON_PERMISSIONS),
            actor=owner,
        )
    policy = breakglass_services.policy_create(
        tenant=tenant,
        actor=owner,
        name=POLICY,
        role=role,
        approvals_required=1,
        max_duration_minutes=120,
        pending_minutes=30,
        incident_required=True,
        requester_roles=["developer", "member"],
        approver_roles=["owner"],
    )
    start = timezone.now() - timedelta(days=2, hours=3)
    with _at(start):
        elevation = breakglass_services.elevation_request(
            policy=policy,
            requester=dev,
            duration_minutes=90,
            justification="Checkout failing for EU customers; the support-tickets dataset must be re-described.",
            incident_ref=INCIDENT,
        )
    with _at(start + timedelta(minutes=4)):
        breakglass_services.elevation_approve(
            tenant=tenant, elevation_id=elevation.pk, approver=owner, comment="Go ahead; end it when done."
        )
    with _at(start + timedelta(minutes=21)):
        # What she did with it: a change that needs dataset.manage, which only the elevation gives her.
        if can(dev, "dataset.manage", tenant=tenant):
            for dataset in catalog_selectors.dataset_list(tenant=tenant, subject=dev).filter(name="support-tickets"):
                catalog_services.dataset_update(
                    dataset=dataset,
                    data={"description": "Customer support tickets since 2024 (EU checkout incident INC-2041)."},
                    actor=dev.user,
                )
    with _at(start + timedelta(minutes=38)):
        breakglass_services.elevation_end(tenant=tenant, elevation_id=elevation.pk, actor=dev)
    return [
        f"break-glass policy “{POLICY}” ({role.name} for up to 2 h, 1 approval by an Owner) in {slug}",
        f"past break-glass elevation #{elevation.pk} ({INCIDENT}, ended early) in {slug}",
    ]
