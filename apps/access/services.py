"""The decision point: ``authorize()`` is the only place that decides access."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.access.catalog import BASE_ROLE_PERMISSIONS, require_known
from apps.tenants.models import Membership, Tenant


@dataclass(frozen=True, slots=True)
class Decision:
    """An access decision with the reasons that led to it."""

    allowed: bool
    action: str
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.allowed


def authorize(
    subject: Membership | None, action: str, resource: Any = None, *, tenant: Tenant | None = None
) -> Decision:
    """May ``subject`` perform ``action`` (on ``resource``)?

    ``subject`` is a membership today (an API client joins with the runtime
    API). ``tenant`` is the tenant the request is about; it defaults to the
    subject's own. A ``resource`` is any tenant-owned object (it has
    ``tenant_id``); one of another tenant is always denied.

    Deny by default. Order: membership and tenant status, then role
    permissions. Object grants and break-glass elevations join this function
    in later issues. Raises ValueError for an action not in the catalog.
    """
    require_known(action)
    if subject is None:
        return Decision(False, action, ("not a member of this tenant",))
    tenant_id = tenant.pk if tenant is not None else subject.tenant_id
    if subject.tenant_id != tenant_id:
        return Decision(False, action, ("not a member of this tenant",))
    if resource is not None and getattr(resource, "tenant_id", None) != tenant_id:
        return Decision(False, action, ("resource belongs to another tenant",))
    if subject.status != Membership.Status.ACTIVE:
        return Decision(False, action, (f"membership is {subject.status}",))
    if action in BASE_ROLE_PERMISSIONS.get(subject.role, frozenset()):
        return Decision(True, action, (f"role {subject.role} grants {action}",))
    return Decision(False, action, (f"role {subject.role} does not grant {action}",))
