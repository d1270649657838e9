"""Which connection signs people in: the tenant's primary connection and per-domain routing (#9, item 4).

One enabled connection per tenant (and one for the platform) is primary: the
database holds at most one (partial unique index) and only an enabled one
(check constraint). ``primary_ensure`` keeps it so after every status change,
inside the caller's transaction. A verified domain may be routed to one of its
own tenant's connections; discovery then uses that connection while it is
enabled, and the primary otherwise (``selectors.discovery_connection``).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import record
from apps.sso.models import SSOConnection, VerifiedDomain
from apps.sso.services._common import SSOInputError, _audit_actor, _lock_connection
from apps.tenants.models import Tenant


def primary_ensure(*, tenant_id: int | None) -> SSOConnection | None:
    """Make sure the tenant's primary is an enabled connection: keep it, or promote the first enabled by name.

    Call inside the transaction that changed a status. Returns the primary (None without an enabled connection).
    """
    enabled = SSOConnection.objects.for_tenant(tenant_id).filter(status=SSOConnection.Status.ENABLED)
    current = enabled.filter(is_primary=True).first()
    if current is not None:
        return current
    candidate = enabled.order_by("name", "pk").first()
    if candidate is not None:
        SSOConnection.objects.filter(pk=candidate.pk).update(is_primary=True)
        candidate.is_primary = True
    return candidate


def connection_make_primary(*, connection: SSOConnection, actor: User | None) -> SSOConnection:
    """Make an enabled connection the one discovery and sign-in messages use; audited. Raises SSOInputError."""
    with transaction.atomic():
        locked = _lock_connection(connection)
        if locked.status != SSOConnection.Status.ENABLED:
            raise SSOInputError("Only an enabled connection can be the primary one.")
        if locked.is_primary:
            return locked
        previous = SSOConnection.objects.for_tenant(locked.tenant_id).filter(is_primary=True).first()
        # Clear first: the partial unique index allows one primary per tenant at any moment.
        SSOConnection.objects.for_tenant(locked.tenant_id).filter(is_primary=True).update(is_primary=False)
        locked.is_primary = True
        locked.updated_at = timezone.now()
        locked.save(update_fields=["is_primary", "updated_at"])
        record(
            "sso.connection_primary",
            tenant=locked.tenant,
            actor=_audit_actor(actor),
            target=locked,
            metadata={
                "before": {"primary": previous.name if previous else None},
                "after": {"primary": locked.name},
            },
        )
    return locked


def domain_route(
    *, tenant: Tenant | None, domain: VerifiedDomain, connection: SSOConnection | None, actor: User | None
) -> VerifiedDomain:
    """Send sign-ins from ``domain`` to ``connection`` (None: back to the primary); audited.

    Both must belong to ``tenant`` (the platform's for None): a domain can never
    be routed to another tenant's IdP. Raises SSOInputError otherwise.
    """
    tenant_id = tenant.pk if tenant is not None else None
    with transaction.atomic():
        locked = VerifiedDomain.objects.for_tenant(tenant_id).select_for_update().filter(pk=domain.pk).first()
        if locked is None:
            raise SSOInputError("No such domain.", field="domain")
        target = None
        if connection is not None:
            target = SSOConnection.objects.for_tenant(tenant_id).filter(pk=connection.pk, setup_pending=False).first()
            if target is None:
                raise SSOInputError("Choose one of this organisation's connections.", field="connection")
        before = locked.connection_id
        if before == (target.pk if target else None):
            return locked
        locked.connection = target
        locked.save(update_fields=["connection"])
        record(
            "sso.domain_route",
            tenant=tenant,
            actor=_audit_actor(actor),
            target=locked,
            metadata={
                "domain": locked.domain,
                "before": {"connection": before},
                "after": {"connection": target.pk if target else None, "name": target.name if target else None},
            },
        )
    return locked
