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


def authorize(membership: Membership | None, action: str, resource: Any = None, *, tenant: Tenant) -> Decision:
    """May the holder of ``membership`` perform ``action`` (on ``resource``) in ``tenant``?

    Deny by default. Order: membership and tenant status, then role permissions.
    Object grants and break-glass elevations join this function in later issues.
    Raises ValueError for an action that is not in the catalog.
    """
    require_known(action)
    if membership is None or membership.tenant_id != tenant.pk:
        return Decision(False, action, ("not a member of this tenant",))
    if membership.status != Membership.Status.ACTIVE:
        return Decision(False, action, (f"membership is {membership.status}",))
    if action in BASE_ROLE_PERMISSIONS.get(membership.role, frozenset()):
        return Decision(True, action, (f"role {membership.role} grants {action}",))
    return Decision(False, action, (f"role {membership.role} does not grant {action}",))
