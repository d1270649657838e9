"""Named reads of the audit log: the console list and the exports.

Every read is scoped: a tenant sees only its own chain; ``tenant=None`` is the
platform scope (every tenant and the platform chain), for platform staff only.
No read counts rows: lists use keyset pagination.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Collate, Lower

from apps.accounts.models import User
from apps.audit.models import EVENT_FIELDS, AuditEvent
from apps.core.pagination import Page, keyset_page, within
from apps.tenants.models import Tenant

EXPORT_CHUNK_SIZE = 2000

EXPORT_COLUMNS = ("id", "occurred_at", "tenant_slug", "chain", "seq", *EVENT_FIELDS, "hash")


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """Cleaned filters of the audit list (see apps.audit.forms.AuditFilterForm).

    ``action`` ending in "." or "*" is a prefix. ``occurred_from`` is inclusive
    and ``occurred_before`` exclusive. ``tenant`` and ``platform_only`` narrow
    the platform scope and are ignored when a tenant scope is given.
    """

    actor: str = ""
    action: str = ""
    result: str = ""
    target_type: str = ""
    target_id: str = ""
    occurred_from: datetime | None = None
    occurred_before: datetime | None = None
    tenant: Tenant | None = None
    platform_only: bool = False

    @property
    def action_prefix(self) -> str | None:
        if self.action.endswith("*"):
            return self.action[:-1]
        if self.action.endswith("."):
            return self.action
        return None

    def as_metadata(self) -> dict[str, Any]:
        """The filters that are set, JSON-safe (for the audit.export event)."""
        data: dict[str, Any] = {
            "actor": self.actor,
            "action": self.action,
            "result": self.result,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "occurred_from": self.occurred_from.isoformat() if self.occurred_from else "",
            "occurred_before": self.occurred_before.isoformat() if self.occurred_before else "",
            "tenant": self.tenant.slug if self.tenant else ("platform" if self.platform_only else ""),
        }
        return {key: value for key, value in data.items() if value}


def _actor_user_id(actor: str) -> int | None:
    """The id of the user whose e-mail is ``actor`` (case-insensitive), or None.

    Filters on LOWER(email) so the accounts_user_email_ci_unique index answers it.
    """
    return (
        User.objects.alias(email_lower=Lower("email"))
        .filter(email_lower=actor.lower())
        .values_list("pk", flat=True)
        .first()
    )


def event_queryset(*, tenant: Tenant | None, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Events visible in a scope, filtered; unordered (callers order by time, id).

    Each filter is shaped to lead with an index: tenant, then actor id / actor
    display / action / target, then time. An action prefix is an index range
    (whether PostgreSQL then reads that range or the time index depends on how
    common the prefix is). An e-mail in the actor filter is
    resolved to the user's id (one indexed lookup) so that the actor's events
    are found under every e-mail they ever had; an e-mail that belongs to no
    user matches the display snapshot instead (anonymous sign-in attempts,
    deleted users). Anything else matches the actor id exactly.
    """
    qs = AuditEvent.objects.all()
    if tenant is not None:
        qs = qs.for_tenant(tenant)
    elif filters.tenant is not None:
        qs = qs.for_tenant(filters.tenant)
    elif filters.platform_only:
        qs = qs.filter(tenant__isnull=True)
    if filters.actor:
        if "@" in filters.actor:
            user_id = _actor_user_id(filters.actor)
            if user_id is not None:
                qs = qs.filter(actor_id=str(user_id), actor_type=AuditEvent.ActorType.USER)
            else:
                qs = qs.filter(actor_display__iexact=filters.actor)
        else:
            qs = qs.filter(actor_id=filters.actor)
    if filters.action:
        # Compared in byte order (COLLATE "C") to match the audit_tenant_action_c_time
        # index: a prefix is then the index range [prefix, prefix with its last character + 1).
        qs = qs.alias(action_c=Collate("action", "C"))
        prefix = filters.action_prefix
        if prefix is None:
            qs = qs.filter(action_c=filters.action)
        elif prefix:
            qs = qs.filter(action_c__gte=prefix, action_c__lt=prefix[:-1] + chr(ord(prefix[-1]) + 1))
    if filters.result:
        qs = qs.filter(result=filters.result)
    if filters.target_type:
        qs = qs.filter(target_type=filters.target_type)
        if filters.target_id:
            qs = qs.filter(target_id=filters.target_id)
    return within(qs, start=filters.occurred_from, end=filters.occurred_before)


def event_list(*, tenant: Tenant | None, filters: AuditFilters, cursor: str | None, size: int) -> Page:
    """One page of events, newest first, after ``cursor``.

    ``tenant`` None is the platform scope (callers must have checked platform
    staff). The number of queries is constant: at most one user lookup for an
    e-mail actor filter, and one query for the page (the tenant is joined in
    the platform scope). Raises apps.core.pagination.InvalidCursorError for a
    cursor this server did not issue.
    """
    qs = event_queryset(tenant=tenant, filters=filters)
    if tenant is None:
        qs = qs.select_related("tenant")
    return keyset_page(qs, cursor=cursor, size=size)


def event_export_rows(*, tenant: Tenant | None, filters: AuditFilters) -> Iterator[dict[str, Any]]:
    """Every event matching ``filters``, newest first, as dicts keyed by EXPORT_COLUMNS.

    Lazy: a server-side cursor fetches EXPORT_CHUNK_SIZE rows at a time inside
    one read-only transaction (one snapshot), so memory does not grow with the
    export. The transaction ends when the iterator is exhausted or closed.
    """
    qs = (
        event_queryset(tenant=tenant, filters=filters)
        .order_by("-occurred_at", "-id")
        .values(*(column for column in EXPORT_COLUMNS if column != "tenant_slug"), tenant_slug=F("tenant__slug"))
    )
    with transaction.atomic():
        yield from qs.iterator(chunk_size=EXPORT_CHUNK_SIZE)
