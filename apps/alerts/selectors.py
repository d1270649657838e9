"""Named reads of the alerts app, always for one tenant (another tenant's id is simply not found).

Lists are ordered on indexed columns and joined up front (``select_related``),
so a page costs the same few queries however many rows it shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from apps.access.selectors import membership_choices
from apps.alerts.models import Alert, AlertRule, Delivery, DeliveryAttempt, FraudCase, FraudPolicy, WebhookEndpoint
from apps.alerts.services.fraud import policy_for
from apps.tenants.models import Membership, Tenant

MAX_ID = 2**63 - 1


def _id(pk: int) -> int | None:
    return pk if 0 < pk <= MAX_ID else None


def active_tenant_ids() -> list[int]:
    return list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).order_by("pk").values_list("pk", flat=True))


def rule_list(*, tenant: Tenant) -> QuerySet[AlertRule]:
    return AlertRule.objects.for_tenant(tenant).order_by("name", "pk")


def rule_get(*, tenant: Tenant, pk: int) -> AlertRule | None:
    return AlertRule.objects.for_tenant(tenant).filter(pk=_id(pk)).first() if _id(pk) else None


def alert_list(*, tenant: Tenant, status: str = "", metric: str = "") -> QuerySet[Alert]:
    qs = Alert.objects.for_tenant(tenant).select_related("rule", "acknowledged_by__user", "resolved_by__user")
    if status == "active":
        qs = qs.filter(status__in=(Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED))
    elif status:
        qs = qs.filter(status=status)
    if metric:
        qs = qs.filter(metric=metric)
    return qs.order_by("-opened_at", "-id")


def alert_get(*, tenant: Tenant, pk: int) -> Alert | None:
    if not _id(pk):
        return None
    return (
        Alert.objects.for_tenant(tenant)
        .select_related("rule", "acknowledged_by__user", "resolved_by__user")
        .filter(pk=pk)
        .first()
    )


@dataclass(frozen=True, slots=True)
class OpenCounts:
    open: int
    acknowledged: int
    cases: int


def open_counts(*, tenant: Tenant, with_cases: bool) -> OpenCounts:
    """Open and acknowledged alerts (one query) and, when asked, open fraud cases (one more)."""
    row = Alert.objects.for_tenant(tenant).aggregate(
        open=Count("id", filter=Q(status=Alert.Status.OPEN)),
        acknowledged=Count("id", filter=Q(status=Alert.Status.ACKNOWLEDGED)),
    )
    cases = FraudCase.objects.for_tenant(tenant).filter(status=FraudCase.Status.OPEN).count() if with_cases else 0
    return OpenCounts(row["open"], row["acknowledged"], cases)


def recent_open_alerts(*, tenant: Tenant, limit: int = 3) -> list[Alert]:
    return list(
        Alert.objects.for_tenant(tenant)
        .filter(status__in=(Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED))
        .order_by("-opened_at", "-id")[:limit]
    )


def endpoint_list(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.for_tenant(tenant).order_by("name", "pk")


def endpoint_get(*, tenant: Tenant, pk: int) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.for_tenant(tenant).filter(pk=pk).first() if _id(pk) else None


def delivery_list(*, tenant: Tenant, status: str = "", channel: str = "") -> QuerySet[Delivery]:
    qs = Delivery.objects.for_tenant(tenant).select_related("alert", "case", "endpoint")
    if status:
        qs = qs.filter(status=status)
    if channel:
        qs = qs.filter(channel=channel)
    return qs.order_by("-created_at", "-id")


def delivery_get(*, tenant: Tenant, pk: int) -> Delivery | None:
    if not _id(pk):
        return None
    return Delivery.objects.for_tenant(tenant).select_related("alert", "case", "endpoint").filter(pk=pk).first()


def delivery_attempts(*, delivery: Delivery) -> list[DeliveryAttempt]:
    return list(DeliveryAttempt.objects.for_tenant(delivery.tenant_id).filter(delivery=delivery).order_by("number"))


def alert_deliveries(*, alert: Alert) -> list[Delivery]:
    return list(Delivery.objects.for_tenant(alert.tenant_id).filter(alert=alert).select_related("endpoint"))


def case_deliveries(*, case: FraudCase) -> list[Delivery]:
    return list(Delivery.objects.for_tenant(case.tenant_id).filter(case=case).select_related("endpoint"))


def case_list(
    *, tenant: Tenant, status: str = "", signal: str = "", mine: Membership | None = None
) -> QuerySet[FraudCase]:
    qs = FraudCase.objects.for_tenant(tenant).select_related("client", "assignee__user", "decided_by__user")
    if status:
        qs = qs.filter(status=status)
    if signal:
        qs = qs.filter(signal=signal)
    if mine is not None:
        qs = qs.filter(assignee=mine)
    return qs.order_by("-opened_at", "-id")


def case_get(*, tenant: Tenant, pk: int) -> FraudCase | None:
    if not _id(pk):
        return None
    return (
        FraudCase.objects.for_tenant(tenant)
        .select_related("client", "assignee__user", "decided_by__user")
        .filter(pk=pk)
        .first()
    )


def fraud_policy(*, tenant: Tenant) -> FraudPolicy:
    return policy_for(tenant=tenant)


def assignee_choices(*, tenant: Tenant) -> QuerySet[Membership]:
    """Active members (the service refuses one who cannot open the fraud queue, with a message saying so)."""
    return membership_choices(tenant=tenant).filter(status=Membership.Status.ACTIVE)
