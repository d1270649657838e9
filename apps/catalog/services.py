"""Catalog writes: datasets, tools and models.

Every service is keyword-only, atomic, validates before writing, records one
audit event (updates carry the before/after of each changed field) and returns
the object. Validation failures raise ``django.core.exceptions.ValidationError``
keyed by field name, so a form can put each message next to its field.
Permission checks belong to the caller (the view's ``tenant_view``); the
tenant is always the one of the object or the one passed in, never user input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from apps.access.permsets import bump_version
from apps.accounts.models import User
from apps.audit.services import Actor, record
from apps.catalog.models import AIModel, Dataset, Tool
from apps.catalog.validation import (
    json_digest,
    normalise_egress_allowlist,
    normalise_tags,
    validate_args_schema,
)
from apps.tenants.models import Membership, Tenant

M = TypeVar("M", bound=models.Model)

DATASET_FIELDS = ("name", "description", "classification", "contains_personal_data", "owner", "tags")
TOOL_FIELDS = (
    "name",
    "description",
    "args_schema",
    "egress_allowlist",
    "output_cap_bytes",
    "args_cap_bytes",
    "risk_level",
    "allowlisted",
    "requires_preauth",
)
PRICE_QUANTUM = Decimal("0.000001")
MODEL_FIELDS = ("provider", "model_name", "price_per_1k_input", "price_per_1k_output", "enabled", "requires_preauth")


def _audit_actor(actor: User | None) -> Actor:
    return Actor.for_user(actor) if actor is not None else Actor.from_context()


def _audit_value(obj: models.Model, field: str) -> Any:
    """A JSON-safe value for the audit log; documents become their size and digest."""
    if field == "owner":
        return obj.owner_id  # type: ignore[attr-defined]
    value = getattr(obj, field)
    if field == "args_schema":
        return json_digest(value)
    if isinstance(value, (Decimal, int)) and field.startswith("price_"):
        # Same scale before and after, so 0 and 0.000000 are not reported as a change.
        return str(Decimal(value).quantize(PRICE_QUANTUM))
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


def _snapshot(obj: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    return {field: _audit_value(obj, field) for field in fields}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: {"before": before[key], "after": after[key]} for key in before if before[key] != after[key]}


def _apply(obj: models.Model, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = set(data) - set(allowed)
    if unknown:
        raise TypeError(f"cannot update {sorted(unknown)} on {type(obj).__name__}")
    for field, value in data.items():
        setattr(obj, field, value)


def _full_clean(obj: models.Model, errors: dict[str, list[str]], *, exclude: Iterable[str] = ()) -> None:
    """Field validation (lengths, choices, ranges) merged into ``errors``; constraints are checked by hand."""
    try:
        obj.full_clean(exclude=["tenant", *exclude], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(m for m in messages if m not in errors.get(field, []))


def _raise_if(errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationError(errors)


def _collect(errors: dict[str, list[str]], field: str, exc: ValidationError) -> None:
    errors.setdefault(field, []).extend(exc.messages)


def _save_unique(obj: M, *, field: str, message: str) -> M:
    """Save in a savepoint; a unique violation that raced past the pre-check becomes a field error."""
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", "") or ""
        if "unique" not in constraint:
            raise
        raise ValidationError({field: [message]}) from None
    return obj


def _catalog_changed(tenant_id: int) -> None:
    """A row that decisions read was created, changed or deleted: move the tenant's access version.

    Decisions read a dataset's classification and a tool's or model's state. The
    runtime API keeps those rows per process keyed by the access version (no
    query on its warm path), so moving the version in this transaction makes a
    reclassified, disabled or deleted object count on the very next call in
    every process. Catalog writes are rare; the permission sets they also
    invalidate reload in two queries.
    """
    bump_version(tenant_id)


def _locked(model: type[M], obj: M) -> M:
    """Re-read ``obj`` through its tenant's scope with a row lock: the base for a before/after diff."""
    return model.objects.for_tenant(obj.tenant_id).select_for_update().get(pk=obj.pk)  # type: ignore[attr-defined]


# Datasets -------------------------------------------------------------------------------------------------------


def _update(
    obj: M,
    data: Mapping[str, Any],
    *,
    fields: tuple[str, ...],
    validate: Callable[[M], None],
    unique_field: str,
    unique_message: Callable[[M], str],
    action: str,
    actor: User | None,
) -> M:
    """Lock, change, validate, save and audit (before/after of changed fields); no change, no write."""
    locked = _locked(type(obj), obj)
    before = _snapshot(locked, fields)
    _apply(locked, data, fields)
    validate(locked)
    changes = _changes(before, _snapshot(locked, fields))
    if not changes:
        return locked
    locked.updated_at = timezone.now()  # type: ignore[attr-defined]
    _save_unique(locked, field=unique_field, message=unique_message(locked))
    _catalog_changed(locked.tenant_id)  # type: ignore[attr-defined]
    record(action, tenant=locked.tenant_id, actor=_audit_actor(actor), target=locked, metadata={"changes": changes})  # type: ignore[attr-defined]
    return locked


def _delete(obj: models.Model, *, fields: tuple[str, ...], action: str, actor: User | None) -> None:
    """Lock and delete ``obj``; the audit event keeps what it was."""
    locked = _locked(type(obj), obj)
    pk, snapshot = locked.pk, _snapshot(locked, fields)
    locked.delete()
    _catalog_changed(locked.tenant_id)  # type: ignore[attr-defined]
    record(
        action,
        tenant=locked.tenant_id,  # type: ignore[attr-defined]
        actor=_audit_actor(actor),
        target_type=obj._meta.model_name or "",
        target_id=pk,
        metadata=snapshot,
    )


def _validate_dataset(dataset: Dataset) -> None:
    errors: dict[str, list[str]] = {}
    dataset.name = (dataset.name or "").strip()
    dataset.description = (dataset.description or "").strip()
    try:
        dataset.tags = normalise_tags(dataset.tags or [])
    except ValidationError as exc:
        _collect(errors, "tags", exc)
    _full_clean(dataset, errors, exclude=["owner", "tags"])
    if (
        dataset.owner_id is not None
        and not Membership.objects.for_tenant(dataset.tenant_id).active().filter(user_id=dataset.owner_id).exists()
    ):
        errors.setdefault("owner", []).append("Choose an active member of this tenant as the owner.")
    if (
        dataset.name
        and Dataset.objects.for_tenant(dataset.tenant_id).filter(name=dataset.name).exclude(pk=dataset.pk).exists()
    ):
        errors.setdefault("name", []).append(f"A dataset named “{dataset.name}” already exists.")
    _raise_if(errors)


@transaction.atomic
def dataset_create(
    *,
    tenant: Tenant,
    name: str,
    classification: str = Dataset.Classification.INTERNAL,
    description: str = "",
    contains_personal_data: bool = False,
    owner: User | None = None,
    tags: Iterable[str] = (),
    actor: User | None = None,
) -> Dataset:
    """Register a dataset in ``tenant``. Raises ValidationError (by field) if anything is off.

    The caller has checked ``dataset.manage``. The owner must be an active member of the tenant.
    """
    dataset = Dataset(
        tenant=tenant,
        name=name,
        classification=classification,
        description=description,
        contains_personal_data=contains_personal_data,
        owner=owner,
        tags=list(tags),
    )
    _validate_dataset(dataset)
    _save_unique(dataset, field="name", message=f"A dataset named “{dataset.name}” already exists.")
    _catalog_changed(dataset.tenant_id)
    record(
        "dataset.create",
        tenant=tenant,
        actor=_audit_actor(actor),
        target=dataset,
        metadata=_snapshot(dataset, DATASET_FIELDS),
    )
    return dataset


@transaction.atomic
def dataset_update(*, dataset: Dataset, data: Mapping[str, Any], actor: User | None = None) -> Dataset:
    """Change fields of ``dataset`` (keys of ``data`` from DATASET_FIELDS). Raises ValidationError by field.

    The row is locked and re-read in its own tenant; the audit event lists each
    changed field's before and after. No change, no write and no event.
    """
    return _update(
        dataset,
        data,
        fields=DATASET_FIELDS,
        validate=_validate_dataset,
        unique_field="name",
        unique_message=lambda d: f"A dataset named “{d.name}” already exists.",
        action="dataset.update",
        actor=actor,
    )


@transaction.atomic
def dataset_delete(*, dataset: Dataset, actor: User | None = None) -> None:
    """Delete ``dataset``; the audit event keeps what it was."""
    _delete(dataset, fields=DATASET_FIELDS, action="dataset.delete", actor=actor)


# Tools ----------------------------------------------------------------------------------------------------------


def _validate_tool(tool: Tool) -> None:
    errors: dict[str, list[str]] = {}
    tool.name = (tool.name or "").strip()
    tool.description = (tool.description or "").strip()
    try:
        validate_args_schema(tool.args_schema)
    except ValidationError as exc:
        _collect(errors, "args_schema", exc)
    try:
        tool.egress_allowlist = normalise_egress_allowlist(tool.egress_allowlist or [])
    except ValidationError as exc:
        _collect(errors, "egress_allowlist", exc)
    _full_clean(tool, errors, exclude=["args_schema", "egress_allowlist"])
    if tool.name and Tool.objects.for_tenant(tool.tenant_id).filter(name=tool.name).exclude(pk=tool.pk).exists():
        errors.setdefault("name", []).append(f"A tool named “{tool.name}” already exists.")
    _raise_if(errors)


@transaction.atomic
def tool_create(
    *,
    tenant: Tenant,
    name: str,
    args_schema: Any,
    description: str = "",
    egress_allowlist: Iterable[str] = (),
    output_cap_bytes: int = 1024 * 1024,
    args_cap_bytes: int | None = None,
    risk_level: str = Tool.RiskLevel.MEDIUM,
    allowlisted: bool = False,
    requires_preauth: bool = False,
    actor: User | None = None,
) -> Tool:
    """Register a tool in ``tenant``. Raises ValidationError (by field) if anything is off.

    The caller has checked ``tool.manage``. ``args_schema`` must pass
    ``validate_args_schema`` (valid 2020-12 schema, ≤ 64 KiB, local $refs
    only); allowlist entries are stored in canonical form. The audit event
    records the schema's size and digest, not the schema.
    """
    tool = Tool(
        tenant=tenant,
        name=name,
        description=description,
        args_schema=args_schema,
        egress_allowlist=list(egress_allowlist),
        output_cap_bytes=output_cap_bytes,
        args_cap_bytes=args_cap_bytes,
        risk_level=risk_level,
        allowlisted=allowlisted,
        requires_preauth=requires_preauth,
    )
    _validate_tool(tool)
    _save_unique(tool, field="name", message=f"A tool named “{tool.name}” already exists.")
    _catalog_changed(tool.tenant_id)
    record("tool.create", tenant=tenant, actor=_audit_actor(actor), target=tool, metadata=_snapshot(tool, TOOL_FIELDS))
    return tool


@transaction.atomic
def tool_update(*, tool: Tool, data: Mapping[str, Any], actor: User | None = None) -> Tool:
    """Change fields of ``tool`` (keys of ``data`` from TOOL_FIELDS). Raises ValidationError by field.

    Locked and re-read in its own tenant; the audit event lists each changed
    field's before and after (the schema as size and digest).
    """
    return _update(
        tool,
        data,
        fields=TOOL_FIELDS,
        validate=_validate_tool,
        unique_field="name",
        unique_message=lambda t: f"A tool named “{t.name}” already exists.",
        action="tool.update",
        actor=actor,
    )


@transaction.atomic
def tool_delete(*, tool: Tool, actor: User | None = None) -> None:
    """Delete ``tool``; the audit event keeps what it was."""
    _delete(tool, fields=TOOL_FIELDS, action="tool.delete", actor=actor)


# Models ---------------------------------------------------------------------------------------------------------


def _validate_model(model: AIModel) -> None:
    errors: dict[str, list[str]] = {}
    model.model_name = (model.model_name or "").strip()
    _full_clean(model, errors)
    if (
        model.model_name
        and AIModel.objects.for_tenant(model.tenant_id)
        .filter(provider=model.provider, model_name=model.model_name)
        .exclude(pk=model.pk)
        .exists()
    ):
        errors.setdefault("model_name", []).append(
            f"{model.get_provider_display()} model “{model.model_name}” is already registered."
        )
    _raise_if(errors)


@transaction.atomic
def model_create(
    *,
    tenant: Tenant,
    provider: str,
    model_name: str,
    price_per_1k_input: Decimal | int = 0,
    price_per_1k_output: Decimal | int = 0,
    enabled: bool = False,
    requires_preauth: bool = False,
    actor: User | None = None,
) -> AIModel:
    """Register a provider model in ``tenant`` (disabled unless ``enabled``). Raises ValidationError by field.

    The caller has checked ``tool.manage`` (see apps.catalog.permissions.MODEL_MANAGE).
    """
    model = AIModel(
        tenant=tenant,
        provider=provider,
        model_name=model_name,
        price_per_1k_input=price_per_1k_input,
        price_per_1k_output=price_per_1k_output,
        enabled=enabled,
        requires_preauth=requires_preauth,
    )
    _validate_model(model)
    _save_unique(model, field="model_name", message="This model is already registered.")
    _catalog_changed(model.tenant_id)
    record(
        "model.create", tenant=tenant, actor=_audit_actor(actor), target=model, metadata=_snapshot(model, MODEL_FIELDS)
    )
    return model


@transaction.atomic
def model_update(*, model: AIModel, data: Mapping[str, Any], actor: User | None = None) -> AIModel:
    """Change fields of ``model`` (keys from MODEL_FIELDS), including enabling or disabling it.

    Raises ValidationError by field. Locked, re-read in its own tenant, audited with before/after.
    """
    return _update(
        model,
        data,
        fields=MODEL_FIELDS,
        validate=_validate_model,
        unique_field="model_name",
        unique_message=lambda m: "This model is already registered.",
        action="model.update",
        actor=actor,
    )
