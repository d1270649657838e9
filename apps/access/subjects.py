"""Subjects ``access`` decides for besides a membership: the ``Subject`` protocol.

``access`` sits on floor 2 and never imports the apps above it, yet the runtime
API's clients (``apps.keys``) must be decided for by the same ``authorize()``,
``can()`` and ``restrict()`` as members. So ``access`` names what it needs of
such a subject here, and the model above implements it (structural typing, no
import): its tenant, whether it is active, the one role it acts as (a built-in
key or a custom role of its tenant) and the django auth ``Group`` that holds its
own object grants (as a role's group holds the role's).

The permission set of a subject is loaded by ``permsets.for_subject`` and cached
under the tenant's access version exactly like a membership's, so every
role, grant or client change (each bumps the version) is seen on the next
decision. A subject's denials are logged with its ``subject_type``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from apps.tenants.models import Tenant


@runtime_checkable
class Subject(Protocol):
    """A non-member subject (an API client): see the module docstring."""

    pk: Any
    id: int
    tenant_id: int
    tenant: Tenant
    status: str  # "active" lets it act; any other value is the reason it cannot
    subject_type: str  # how the decision log and reasons name its kind, e.g. "client"
    role_key: str  # a built-in role key, or "" when it acts as a custom role
    role_id: int | None  # the custom role (apps.access.models.Role) it acts as, or None
    group_id: int  # the guardian group holding its own object grants

    @property
    def subject_label(self) -> str:
        """How a person reads it in the decision log and in explanations."""
        ...
