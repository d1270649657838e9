"""Named reads of the catalog, always for one tenant and one acting subject.

Every selector scopes by ``for_tenant(tenant)`` first, so another tenant's id
is simply not found. Visibility is decided by ``apps.access`` and nothing else:

- lists: ``restrict(qs, subject, *actions)`` narrows the queryset in SQL with
  the same rules as ``authorize`` (a role-wide permission, a dataset's
  classification against the role's clearance, object grants), so the query
  count stays flat however many rows there are and the result paginates in SQL;
- single objects: ``can`` / ``authorize(subject, action, obj)`` on the row itself.

Selectors are reads: they ask with ``for_reading=True``, so a suspended
tenant's catalog stays readable (writes are refused by ``tenant_view`` and the
services). An object the subject may not see is reported as missing (None), so
views answer 404 and never reveal whether it exists. List filtering and UI
hints do not write to the decision log; a refused single-object read does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet

from apps.access.decisions import authorize, can, restrict
from apps.accounts.models import User
from apps.catalog import permissions
from apps.catalog.models import AIModel, Dataset, Tool
from apps.tenants.models import Membership, Tenant


def _may(subject: Membership | None, actions: Sequence[str], *, tenant: Tenant, resource: Any) -> bool:
    """Any of ``actions`` allowed on ``resource`` (for reading)? A refusal is logged once, for the first action."""
    if any(can(subject, action, resource, tenant=tenant, for_reading=True) for action in actions):
        return True
    # The refused attempt to open the object goes to the decision log (the page then answers 404).
    authorize(subject, actions[0], resource, tenant=tenant, for_reading=True)
    return False


def dataset_list(
    *,
    tenant: Tenant,
    subject: Membership | None,
    classification: str = "",
    personal_data: bool | None = None,
) -> QuerySet[Dataset]:
    """Datasets of ``tenant`` that ``subject`` may ``dataset.read``, by name, owner joined."""
    qs = Dataset.objects.for_tenant(tenant).select_related("owner").order_by("name", "pk")
    if classification:
        qs = qs.filter(classification=classification)
    if personal_data is not None:
        qs = qs.filter(contains_personal_data=personal_data)
    return restrict(qs, subject, permissions.DATASET_READ, tenant=tenant)


def dataset_get(
    *, tenant: Tenant, subject: Membership | None, pk: int, action: str = permissions.DATASET_READ
) -> Dataset | None:
    """One dataset of ``tenant`` on which ``subject`` may ``action``; None if missing or not allowed."""
    dataset = Dataset.objects.for_tenant(tenant).select_related("owner").filter(pk=pk).first()
    if dataset is None or not _may(subject, [action], tenant=tenant, resource=dataset):
        return None
    return dataset


def dataset_owner_choices(*, tenant: Tenant) -> QuerySet[User]:
    """Users who may own a dataset of ``tenant``: its active members, by e-mail."""
    return User.objects.filter(memberships__tenant=tenant, memberships__status=Membership.Status.ACTIVE).order_by(
        "email"
    )


_TOOL_VISIBLE = (permissions.TOOL_EXECUTE, permissions.TOOL_MANAGE)


def tool_list(
    *,
    tenant: Tenant,
    subject: Membership | None,
    risk_level: str = "",
    allowlisted: bool | None = None,
) -> QuerySet[Tool]:
    """Tools of ``tenant`` that ``subject`` may ``tool.execute`` or ``tool.manage``, by name.

    The argument schema (up to 64 KiB a row) is deferred; it loads on access.
    """
    qs = Tool.objects.for_tenant(tenant).defer("args_schema").order_by("name", "pk")
    if risk_level:
        qs = qs.filter(risk_level=risk_level)
    if allowlisted is not None:
        qs = qs.filter(allowlisted=allowlisted)
    return restrict(qs, subject, *_TOOL_VISIBLE, tenant=tenant)


def tool_get(*, tenant: Tenant, subject: Membership | None, pk: int, action: str | None = None) -> Tool | None:
    """One tool of ``tenant``; None if missing or if ``subject`` may not ``action`` on it.

    Without ``action`` the tool is visible to a subject who may execute or manage it.
    """
    tool = Tool.objects.for_tenant(tenant).filter(pk=pk).first()
    actions = _TOOL_VISIBLE if action is None else (action,)
    if tool is None or not _may(subject, actions, tenant=tenant, resource=tool):
        return None
    return tool


_MODEL_VISIBLE = (permissions.MODEL_USE, permissions.MODEL_MANAGE)


def model_list(
    *,
    tenant: Tenant,
    subject: Membership | None,
    provider: str = "",
    enabled: bool | None = None,
) -> QuerySet[AIModel]:
    """Models of ``tenant`` (enabled or not) if ``subject`` may ``model.use`` or manage them."""
    qs = AIModel.objects.for_tenant(tenant).order_by("provider", "model_name", "pk")
    if provider:
        qs = qs.filter(provider=provider)
    if enabled is not None:
        qs = qs.filter(enabled=enabled)
    return restrict(qs, subject, *_MODEL_VISIBLE, tenant=tenant)


def model_get(
    *, tenant: Tenant, subject: Membership | None, pk: int, action: str = permissions.MODEL_USE
) -> AIModel | None:
    """One model of ``tenant`` on which ``subject`` may ``action``; None if missing or not allowed."""
    model = AIModel.objects.for_tenant(tenant).filter(pk=pk).first()
    if model is None or not _may(subject, [action], tenant=tenant, resource=model):
        return None
    return model


DECISION_RESOURCES: dict[str, type[Dataset] | type[Tool] | type[AIModel]] = {
    "dataset": Dataset,
    "tool": Tool,
    "model": AIModel,
}


def resource_for_decision(*, tenant: Tenant, kind: str, ident: str) -> Dataset | Tool | AIModel | None:
    """The catalog object ``kind`` (dataset, tool, model) with id ``ident`` in ``tenant``, unjudged.

    For the caller to hand to ``authorize()`` (the runtime API's decision
    endpoints): no permission is applied here. ``None`` for an unknown kind, an
    id that is not a positive integer (any unicode) and another tenant's row
    alike, so the answer never hints that an id exists elsewhere. One query at most.
    """
    model = DECISION_RESOURCES.get(kind)
    if model is None or not ident.isascii() or not ident.isdigit() or not 0 < int(ident) < 2**63:
        return None
    return model.objects.for_tenant(tenant).filter(pk=int(ident)).first()
