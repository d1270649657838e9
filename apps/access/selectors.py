"""Named reads for the access console: roles, bindings, object grants, the decision log.

Every read takes the tenant keyword-only and starts from ``for_tenant``, so an
id from a URL or a form that belongs to another tenant is simply not found
(``None``), and the view answers 404 or a form error. Selectors that feed a
list fetch what the page shows in a fixed number of queries, however many
rows the page has (``object_grants`` reads the guardian rows of a whole page
of objects at once). None of them checks the caller's permission: the view's
``tenant_view`` has done that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, IntegerField, Max, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from guardian.models import GroupObjectPermission, UserObjectPermission

from apps.access.models import DeniedDecision, Role, RoleBinding
from apps.access.permissions import BUILTIN_ROLES, CODENAME_ACTIONS, OBJECT_ACTIONS, BuiltinRole
from apps.core.pagination import Page, keyset_page, within
from apps.tenants.models import Membership, Tenant
from apps.tenants.selectors import MAX_ID

DENIED_SUMMARY_LIMIT = 50


def _valid_id(ident: int) -> bool:
    # Ids come from URLs and forms; a number bigint cannot hold is "no such row", not a database error.
    return 0 < ident <= MAX_ID


# --- roles ----------------------------------------------------------------------------------


def role_list(*, tenant: Tenant) -> QuerySet[Role]:
    """Roles of ``tenant``, built-in first then by name, with their binding counts (one query).

    Annotated: ``member_binding_count``, ``group_binding_count`` and, for
    built-in roles, ``holder_count`` (active members whose membership role it is).
    """
    holders = (
        Membership.objects.for_tenant(tenant)
        .filter(status=Membership.Status.ACTIVE, role=OuterRef("key"))
        .order_by()
        .values("role")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Role.objects.for_tenant(tenant)
        .annotate(
            member_binding_count=Count("bindings", filter=Q(bindings__membership__isnull=False)),
            group_binding_count=Count("bindings", filter=Q(bindings__membership__isnull=True)),
            holder_count=Coalesce(Subquery(holders, output_field=IntegerField()), 0),
        )
        .order_by("-builtin", "name", "pk")
    )


def role_get(*, tenant: Tenant, role_id: int) -> Role | None:
    """One role of ``tenant`` by id; ``None`` if it is another tenant's or does not exist."""
    if not _valid_id(role_id):
        return None
    return Role.objects.for_tenant(tenant).filter(pk=role_id).first()


def role_key_taken(*, tenant: Tenant, key: str) -> bool:
    """True if ``key`` names a role of ``tenant`` or a built-in role."""
    return key in BUILTIN_ROLES or Role.objects.for_tenant(tenant).filter(key=key).exists()


def role_name_taken(*, tenant: Tenant, name: str, exclude_id: int | None = None) -> bool:
    """True if another role of ``tenant`` has ``name`` (compared without case)."""
    qs = Role.objects.for_tenant(tenant).filter(name__iexact=name)
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return qs.exists()


def role_bindings(*, tenant: Tenant, role: Role) -> list[RoleBinding]:
    """The bindings of ``role``: members (by e-mail) first, then IdP groups (by name). One query."""
    return list(
        RoleBinding.objects.for_tenant(tenant)
        .permanent()
        .filter(role=role)
        .select_related("membership__user")
        .order_by("idp_group", "membership__user__email", "pk")
    )


def binding_get(*, tenant: Tenant, role: Role, binding_id: int) -> RoleBinding | None:
    """One binding of ``role`` in ``tenant``; ``None`` for any other id."""
    if not _valid_id(binding_id):
        return None
    return (
        RoleBinding.objects.for_tenant(tenant)
        .permanent()
        .filter(role=role, pk=binding_id)
        .select_related("role", "membership__user")
        .first()
    )


def binding_exists(*, tenant: Tenant, role: Role, membership: Membership | None = None, idp_group: str = "") -> bool:
    """True if ``role`` is already bound to ``membership`` or to ``idp_group``."""
    qs = RoleBinding.objects.for_tenant(tenant).permanent().filter(role=role)
    if membership is not None:
        return qs.filter(membership=membership).exists()
    return qs.filter(membership__isnull=True, idp_group=idp_group).exists()


def membership_choices(*, tenant: Tenant) -> QuerySet[Membership]:
    """Memberships a role can be bound to or a grant given to: active and invited, by e-mail."""
    return (
        Membership.objects.for_tenant(tenant)
        .filter(status__in=[Membership.Status.ACTIVE, Membership.Status.INVITED])
        .select_related("user")
        .order_by("user__email", "pk")
    )


def explain_membership_choices(*, tenant: Tenant) -> QuerySet[Membership]:
    """Every membership of ``tenant`` (a disabled one can still be explained), by e-mail."""
    return Membership.objects.for_tenant(tenant).select_related("user").order_by("user__email", "pk")


# --- a member's roles -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberRoles:
    """Where a member's roles come from: membership role, direct bindings, IdP-group bindings."""

    membership: Membership
    base: BuiltinRole | None
    assigned: list[Role] = field(default_factory=list)
    via_groups: list[tuple[str, Role]] = field(default_factory=list)
    unmapped_groups: list[str] = field(default_factory=list)


def member_roles(*, tenant: Tenant, membership: Membership) -> MemberRoles:
    """The roles ``membership`` holds in ``tenant`` and why (one query).

    ``unmapped_groups`` are groups the identity provider sent that no binding uses.
    """
    groups = list(membership.idp_groups or ())
    match = Q(membership=membership)
    if groups:
        match |= Q(membership__isnull=True, idp_group__in=groups)
    assigned: list[Role] = []
    via_groups: list[tuple[str, Role]] = []
    for binding in (
        RoleBinding.objects.for_tenant(tenant)
        .filter(match)
        .current()
        .select_related("role")
        .order_by("idp_group", "role__name")
    ):
        if binding.membership_id:
            assigned.append(binding.role)
        else:
            via_groups.append((binding.idp_group, binding.role))
    mapped = {group for group, _ in via_groups}
    return MemberRoles(
        membership=membership,
        base=BUILTIN_ROLES.get(membership.role),
        assigned=assigned,
        via_groups=via_groups,
        unmapped_groups=[group for group in groups if group not in mapped],
    )


# --- object grants ----------------------------------------------------------------------------


def object_actions_for(obj: Model | type[Model]) -> list[str]:
    """The catalog actions that can be granted on ``obj``'s model (e.g. dataset.read, dataset.write)."""
    meta = obj._meta
    return [
        action
        for action, (app_label, model, _) in OBJECT_ACTIONS.items()
        if (app_label, model) == (meta.app_label, meta.model_name)
    ]


@dataclass(frozen=True, slots=True)
class Grant:
    """One object grant: ``action`` on the object to a role, a member, or a user who left the tenant."""

    action: str
    role: Role | None = None
    membership: Membership | None = None
    former_member: str = ""

    @property
    def holder_label(self) -> str:
        if self.role is not None:
            return f"role {self.role.name}"
        if self.membership is not None:
            return self.membership.user.email
        return f"{self.former_member} (no longer a member)"

    @property
    def grantee_value(self) -> str:
        """The grantee as the grant forms spell it (``role:<id>`` / ``member:<id>``); empty if not revocable."""
        if self.role is not None:
            return f"role:{self.role.pk}"
        if self.membership is not None:
            return f"member:{self.membership.pk}"
        return ""


@dataclass(frozen=True, slots=True)
class ObjectGrants:
    """An object with its grants, one entry per grantable action in catalog order."""

    obj: Any
    by_action: list[tuple[str, list[Grant]]]

    @property
    def kind(self) -> str:
        return self.obj._meta.model_name

    @property
    def target_value(self) -> str:
        return f"{self.kind}:{self.obj.pk}"

    @property
    def count(self) -> int:
        return sum(len(grants) for _, grants in self.by_action)


def object_grants(*, tenant: Tenant, objects: Sequence[Model]) -> list[ObjectGrants]:
    """The guardian grants on ``objects`` (a page of datasets and/or tools of ``tenant``).

    Three queries whatever the number of objects: the role grants (groups that
    are roles of this tenant), the member grants (to users), and the users'
    memberships in this tenant. A grant to a user who is no longer a member is
    reported as such (it would come back if they rejoined). Objects of another
    tenant are ignored.
    """
    objects = [obj for obj in objects if getattr(obj, "tenant_id", None) == tenant.pk]
    if not objects:
        return []
    by_model: dict[type[Model], list[Model]] = {}
    for obj in objects:
        by_model.setdefault(type(obj), []).append(obj)
    content_types = ContentType.objects.get_for_models(*by_model)
    where = Q()
    for model, rows in by_model.items():
        where |= Q(content_type_id=content_types[model].pk, object_pk__in=[str(row.pk) for row in rows])
    codenames = list(CODENAME_ACTIONS)
    found: dict[tuple[int, str], list[Grant]] = {}

    def add(content_type_id: int, object_pk: str, grant: Grant) -> None:
        found.setdefault((content_type_id, object_pk), []).append(grant)

    for row in (
        GroupObjectPermission.objects.filter(
            where, permission__codename__in=codenames, group__bastion_role__tenant_id=tenant.pk
        )
        .select_related("permission", "group__bastion_role")
        .order_by("group__bastion_role__name", "pk")
    ):
        action = CODENAME_ACTIONS[row.permission.codename]
        add(row.content_type_id, row.object_pk, Grant(action=action, role=row.group.bastion_role))

    user_rows = list(
        UserObjectPermission.objects.filter(where, permission__codename__in=codenames)
        .select_related("permission", "user")
        .order_by("user__email", "pk")
    )
    members = {
        membership.user_id: membership
        for membership in Membership.objects.for_tenant(tenant)
        .filter(user_id__in={row.user_id for row in user_rows})
        .select_related("user")
    }
    for row in user_rows:
        action = CODENAME_ACTIONS[row.permission.codename]
        membership = members.get(row.user_id)
        grant = (
            Grant(action=action, membership=membership)
            if membership is not None
            else Grant(action=action, former_member=row.user.email)
        )
        add(row.content_type_id, row.object_pk, grant)

    result = []
    for obj in objects:
        grants = found.get((content_types[type(obj)].pk, str(obj.pk)), [])
        by_action = [(action, [g for g in grants if g.action == action]) for action in object_actions_for(obj)]
        result.append(ObjectGrants(obj=obj, by_action=by_action))
    return result


def role_object_grant_counts(*, tenant: Tenant, role: Role) -> list[tuple[str, int]]:
    """How many objects ``role`` holds each object action on (one GROUP BY query), in catalog order."""
    if role.tenant_id != tenant.pk:
        return []
    counts = dict(
        GroupObjectPermission.objects.filter(group_id=role.group_id, permission__codename__in=list(CODENAME_ACTIONS))
        .values("permission__codename")
        .annotate(n=Count("pk"))
        .values_list("permission__codename", "n")
    )
    return [(action, counts[codename]) for codename, action in CODENAME_ACTIONS.items() if counts.get(codename)]


def tenant_wide_roles(*, tenant: Tenant, actions: Iterable[str]) -> dict[str, list[Role]]:
    """For each of ``actions``: the roles of ``tenant`` that grant it tenant-wide (one query)."""
    wanted = list(actions)
    result: dict[str, list[Role]] = {action: [] for action in wanted}
    for role in Role.objects.for_tenant(tenant).filter(permissions__overlap=wanted).order_by("-builtin", "name"):
        for action in wanted:
            if action in role.permissions:
                result[action].append(role)
    return result


# --- the decision log -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeniedFilters:
    """Cleaned filters of the denied-checks page.

    ``subject`` is a membership id (digits) or an e-mail address;
    ``occurred_from`` is inclusive, ``occurred_before`` exclusive.
    """

    subject: str = ""
    action: str = ""
    occurred_from: datetime | None = None
    occurred_before: datetime | None = None


def denied_queryset(*, tenant: Tenant, filters: DeniedFilters) -> QuerySet[DeniedDecision]:
    """Denied decisions of ``tenant`` matching ``filters``; unordered.

    An e-mail is resolved to the member's id in this tenant (one indexed
    lookup), so the tenant/subject/action index answers; an e-mail that is
    no member's matches the display snapshot (members who have since left).
    """
    qs = DeniedDecision.objects.for_tenant(tenant)
    subject = filters.subject
    if subject:
        if subject.isdigit():
            qs = qs.filter(subject_id=subject)
        else:
            member_id = (
                Membership.objects.for_tenant(tenant)
                .filter(user__email__iexact=subject)
                .values_list("pk", flat=True)
                .first()
            )
            qs = (
                qs.filter(subject_id=str(member_id))
                if member_id is not None
                else qs.filter(subject_display__iexact=subject)
            )
    if filters.action:
        qs = qs.filter(action=filters.action)
    return within(qs, start=filters.occurred_from, end=filters.occurred_before)


def denied_page(*, tenant: Tenant, filters: DeniedFilters, cursor: str | None, size: int) -> Page:
    """One keyset page of matching denials, newest first. Raises InvalidCursorError for a bad cursor."""
    return keyset_page(denied_queryset(tenant=tenant, filters=filters), cursor=cursor, size=size)


def denied_summary(
    *, tenant: Tenant, filters: DeniedFilters, limit: int = DENIED_SUMMARY_LIMIT
) -> list[dict[str, Any]]:
    """Count of matching denials by (subject, action), most frequent first, top ``limit`` (one GROUP BY query).

    Each row: ``subject_id``, ``action``, ``count``, ``display`` (a snapshot
    of the subject's e-mail), ``last_at``.
    """
    return list(
        denied_queryset(tenant=tenant, filters=filters)
        .order_by()
        .values("subject_id", "action")
        .annotate(count=Count("pk"), display=Max("subject_display"), last_at=Max("occurred_at"))
        .order_by("-count", "-last_at", "subject_id", "action")[:limit]
    )
