"""What goes on a runbook's three checklists: each builder returns the lines for one tenant and window.

Lines carry a stable ``ref`` so that rebuilding them (a refresh) updates a line
in place and keeps its mark. Builders read through other apps' selectors
(credentials, the denial log, the audit log); links are console paths where the
line can be acted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q
from django.urls import NoReverseMatch, reverse

from apps.access.selectors import DeniedFilters, denied_summary
from apps.audit.selectors import AuditFilters, event_queryset
from apps.runbook.models import RunbookItem
from apps.runbook.quarters import Quarter
from apps.tenants.models import Membership, Tenant

try:  # the provider-credentials inventory (apps.keys, #13 item 1); the runbook works without it
    from apps.keys.credentials.selectors import credentials_due
except ImportError:  # pragma: no cover - only on an installation without the inventory
    credentials_due = None

DORMANT_DAYS = 90
# More lines than this per kind are summed up in one line that links to the full list.
MAX_LINES_PER_KIND = 200
# Audit actions that change who may do what: roles, their bindings, object grants, a member's base role.
ACCESS_CHANGE_PREFIXES = ("role.", "grant.")
ACCESS_CHANGE_ACTIONS = ("member.role_change",)

Checklist, Kind = RunbookItem.Checklist, RunbookItem.Kind


@dataclass(frozen=True)
class Line:
    """One checklist line before it is stored."""

    checklist: str
    kind: str
    ref: str
    title: str
    link: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    credential_id: int | None = None


def _url(name: str, tenant: Tenant, query: dict[str, Any] | None = None, **kwargs: Any) -> str:
    try:
        path = reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})
    except NoReverseMatch:  # the page is not installed: the line stays, without a link
        return ""
    clean = {key: value for key, value in (query or {}).items() if value not in (None, "")}
    return f"{path}?{urlencode(clean)}" if clean else path


def rotate_lines(*, tenant: Tenant, quarter: Quarter) -> list[Line]:
    """Every credential due this quarter (or already overdue), linking to its rotate page."""
    if credentials_due is None:
        return [
            Line(
                Checklist.ROTATE,
                Kind.NOTICE,
                "notice:no-credentials",
                "The provider-credentials inventory is not installed: confirm rotations were done elsewhere.",
            )
        ]
    lines = []
    for credential in credentials_due(tenant=tenant, start=quarter.start, end=quarter.end)[: MAX_LINES_PER_KIND + 1]:
        owner = credential.owner.user.email if credential.owner_id and credential.owner else ""
        overdue = credential.next_due_on < quarter.start
        lines.append(
            Line(
                Checklist.ROTATE,
                Kind.CREDENTIAL,
                f"credential:{credential.pk}",
                f"Rotate {credential.name} ({credential.provider}, {credential.environment})",
                link=_url("credentials:detail", tenant, pk=credential.pk),
                detail={
                    "due_on": credential.next_due_on.isoformat(),
                    "overdue_at_start": overdue,
                    "owner": owner,
                    "interval_days": credential.rotation_interval_days,
                },
                credential_id=credential.pk,
            )
        )
    return _capped(lines, tenant, "credentials:due", "credentials")


def drill_lines(*, tenant: Tenant, quarter: Quarter) -> list[Line]:
    """One line: a restore drill passed this quarter (the evidence is platform-wide)."""
    return [
        Line(
            Checklist.DRILL,
            Kind.DRILL,
            f"drill:{quarter.label}",
            f"Restore drill for {quarter.label}: the backup restores, every table's rows are all there "
            "and the audit chains verify",
        )
    ]


def drift_lines(*, tenant: Tenant, since: datetime, until: datetime) -> list[Line]:
    """Denied checks by (subject, action), access changes and dormant members, in ``[since, until)``."""
    return [
        *_denied_lines(tenant, since, until),
        *_access_change_lines(tenant, since, until),
        *_dormant_lines(tenant, until),
    ]


def _denied_lines(tenant: Tenant, since: datetime, until: datetime) -> list[Line]:
    rows = denied_summary(
        tenant=tenant,
        filters=DeniedFilters(occurred_from=since, occurred_before=until),
        limit=MAX_LINES_PER_KIND + 1,
    )
    lines = []
    for row in rows:
        who = row["display"] or f"subject {row['subject_id']}"
        lines.append(
            Line(
                Checklist.DRIFT,
                Kind.DENIED,
                f"denied:{row['subject_id']}:{row['action']}"[:200],
                f"{who} was denied {row['action']} {row['count']} time{'s' if row['count'] != 1 else ''}",
                link=_url(
                    "access:denied",
                    tenant,
                    {"subject": row["subject_id"], "action": row["action"], "date_from": since.date().isoformat()},
                ),
                detail={
                    "subject_id": row["subject_id"],
                    "action": row["action"],
                    "count": row["count"],
                    "last_at": row["last_at"].isoformat() if row["last_at"] else None,
                },
            )
        )
    return _capped(lines, tenant, "access:denied", "denied (subject, action) pairs")


def _access_change_lines(tenant: Tenant, since: datetime, until: datetime) -> list[Line]:
    events = []
    for action in (*(prefix for prefix in ACCESS_CHANGE_PREFIXES), *ACCESS_CHANGE_ACTIONS):
        filters = AuditFilters(action=action, occurred_from=since, occurred_before=until)
        events.extend(
            event_queryset(tenant=tenant, filters=filters).order_by("occurred_at", "id")[: MAX_LINES_PER_KIND + 1]
        )
    events.sort(key=lambda event: (event.occurred_at, event.pk))
    lines = []
    for event in events:
        target = f"{event.target_type} {event.target_id}".strip()
        name = (event.metadata or {}).get("after", {}).get("name") if isinstance(event.metadata, dict) else None
        lines.append(
            Line(
                Checklist.DRIFT,
                Kind.ACCESS_CHANGE,
                f"audit:{event.pk}",
                f"{event.action} on {name or target} by {event.actor_display or 'system'}",
                link=_url(
                    "audit:tenant_list",
                    tenant,
                    {"target_type": event.target_type, "target_id": event.target_id, "action": event.action},
                ),
                detail={
                    "event_id": event.pk,
                    "occurred_at": event.occurred_at.isoformat(),
                    "action": event.action,
                    "target": target,
                },
            )
        )
    return _capped(lines, tenant, "audit:tenant_list", "role and binding changes")


def _dormant_lines(tenant: Tenant, until: datetime) -> list[Line]:
    cutoff = until - timedelta(days=DORMANT_DAYS)
    members = (
        Membership.objects.for_tenant(tenant)
        .filter(status=Membership.Status.ACTIVE)
        .filter(
            Q(user__last_login__lt=cutoff)
            | Q(user__last_login__isnull=True)
            & (Q(joined_at__lt=cutoff) | Q(joined_at__isnull=True, invited_at__lt=cutoff))
        )
        .select_related("user")
        .order_by("user__last_login", "pk")[: MAX_LINES_PER_KIND + 1]
    )
    lines = []
    for member in members:
        last = member.user.last_login
        when = f"last signed in {last:%d %b %Y}" if last else "never signed in"
        lines.append(
            Line(
                Checklist.DRIFT,
                Kind.DORMANT,
                f"dormant:{member.pk}",
                f"{member.user.email} ({member.get_role_display()}) has {when}",
                link=_url("tenants:members", tenant),
                detail={"membership_id": member.pk, "last_login": last.isoformat() if last else None},
            )
        )
    return _capped(lines, tenant, "tenants:members", "members without a sign-in")


def _capped(lines: list[Line], tenant: Tenant, url_name: str, what: str) -> list[Line]:
    """At most MAX_LINES_PER_KIND lines; beyond that one line says more exist and where to see them."""
    if len(lines) <= MAX_LINES_PER_KIND:
        return lines
    first = lines[0]
    overflow = Line(
        first.checklist,
        Kind.NOTICE,
        f"more:{first.kind}",
        f"More than {MAX_LINES_PER_KIND} {what}: review the rest on the linked page",
        link=_url(url_name, tenant),
    )
    return [*lines[:MAX_LINES_PER_KIND], overflow]
