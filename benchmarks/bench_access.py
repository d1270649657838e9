#!/usr/bin/env python
"""Access decision benchmark: Bastion's authorize() against pycasbin's FastEnforcer.

    .venv/bin/python benchmarks/bench_access.py [--decisions 200000] [--reseed] [--small] [--database NAME]

Data (in its own database, ``--database``, default ``bastion_bench_access``;
``--small`` uses a tenth of the people in ``bastion_bench_access_small`` for
quick runs while iterating): 50 tenants, 10,000 users
(200 per tenant, each with a membership role and one custom role binding;
one in ten also holds an active break-glass elevation, a time-boxed binding to
another custom role, and one in twenty one that has ended but was not tidied up),
100 custom roles (2 per tenant), 1,000 datasets and tools (10 + 10 per tenant)
with object grants to roles and to single members (django-guardian rows).

The same policy is loaded into pycasbin as RBAC with domains: role lines per
tenant, object grants as policy lines on ``dataset:<id>`` / ``tool:<id>``,
membership and binding lines as ``g`` lines. FastEnforcer indexes policies by
(domain, action).

Measured, on the same random mix of (member, action, resource) requests:
- warm authorize(): permission sets already loaded (request memo), log_denial
  off so that both sides only decide (Bastion writes one row per denial in
  production use; casbin has no decision log);
- new request: the path a real request takes. The membership comes fresh
  from the database with its tenant row (as ``tenant_view`` loads it: no
  per-request memo; the tenant's ``access_version`` comes with the row), and
  the process cache is warm. Measured twice: the request's first decision
  alone (it builds the process-cache key and looks it up: no shared-cache
  round trip, no query), and a console page's worth of decisions (the entry
  check, the nav's twelve ``can`` and two controls: 15 decisions sharing one
  memo). The membership load itself is the entry's one SQL query, the same
  with or without an access check, and is not timed;
- casbin FastEnforcer.enforce() (no per-request state, so one figure);
- cold authorize(): fresh membership, empty caches; SQL queries counted.

Prints a table and writes bench-results/access.json.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import database_url, ensure_database, setup_django, write_results

DB_NAME = "bastion_bench_access"
UNUSABLE = "!"  # Django's marker for an unusable password hash
TENANTS = 50
USERS_PER_TENANT = 200
CUSTOM_ROLES_PER_TENANT = 2
DATASETS_PER_TENANT = 10
TOOLS_PER_TENANT = 10
TARGET_RATIO = 100.0  # the warm path, elevations in the data set (issue #11, item 3)
TARGET_NEW_REQUEST_RATIO = 100.0  # an aim (issue #8), reported; the exit status checks TARGET_RATIO
MAX_COLD_QUERIES = 2
PAGE_DECISIONS = 15  # tenant_view + 12 nav entries + 2 controls
MEMBERSHIP_ROLES = ["member", "member", "member", "viewer", "analyst", "developer", "admin"]
ACTIONS = ["dataset.read", "dataset.write", "tool.execute", "prompt.create", "billing.view", "audit.read"]

CASBIN_MODEL = """
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && (p.obj == "*" || r.obj == p.obj) && r.act == p.act
"""


def seed(rng: random.Random) -> None:
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType
    from django.db import transaction
    from guardian.models import GroupObjectPermission, UserObjectPermission

    from apps.access.models import Role, RoleBinding
    from apps.access.services import builtin_roles_seed
    from apps.accounts.models import User
    from apps.catalog.models import Dataset, Tool
    from apps.tenants.models import Membership, Tenant

    with transaction.atomic():
        tenants = Tenant.objects.bulk_create(
            [Tenant(slug=f"bench-{i:02d}", name=f"Bench {i:02d}") for i in range(TENANTS)]
        )
        users = User.objects.bulk_create(
            [User(email=f"u{i}@bench.example", password=UNUSABLE) for i in range(TENANTS * USERS_PER_TENANT)],
            batch_size=2000,
        )
        perms = {
            p.codename: p
            for p in Permission.objects.filter(codename__in=["dataset_read", "dataset_write", "tool_execute"])
        }
        ds_ct = ContentType.objects.get_for_model(Dataset)
        tool_ct = ContentType.objects.get_for_model(Tool)
        memberships, bindings, user_grants, group_grants = [], [], [], []
        for t_index, tenant in enumerate(tenants):
            builtin_roles_seed(tenant=tenant)
            custom = []
            for r in range(CUSTOM_ROLES_PER_TENANT):
                group = Group.objects.create(name=f"tenant:{tenant.pk}:role:custom-{r}")
                custom.append(
                    Role.objects.create(
                        tenant=tenant,
                        key=f"custom-{r}",
                        name=f"Custom {r}",
                        permissions=rng.sample(["prompt.create", "billing.view", "audit.read", "model.use"], 2),
                        group=group,
                    )
                )
            datasets = Dataset.objects.bulk_create(
                [Dataset(tenant=tenant, name=f"ds-{d}") for d in range(DATASETS_PER_TENANT)]
            )
            tools = Tool.objects.bulk_create([Tool(tenant=tenant, name=f"tool-{d}") for d in range(TOOLS_PER_TENANT)])
            for role in custom:
                for ds in rng.sample(datasets, 4):
                    group_grants.append(
                        GroupObjectPermission(
                            group_id=role.group_id,
                            permission=perms["dataset_read"],
                            content_type=ds_ct,
                            object_pk=str(ds.pk),
                        )
                    )
                for tool in rng.sample(tools, 3):
                    group_grants.append(
                        GroupObjectPermission(
                            group_id=role.group_id,
                            permission=perms["tool_execute"],
                            content_type=tool_ct,
                            object_pk=str(tool.pk),
                        )
                    )
            tenant_users = users[t_index * USERS_PER_TENANT : (t_index + 1) * USERS_PER_TENANT]
            for user in tenant_users:
                memberships.append(
                    Membership(tenant=tenant, user=user, role=rng.choice(MEMBERSHIP_ROLES), status="active")
                )
                if rng.random() < 0.2:
                    ds = rng.choice(datasets)
                    user_grants.append(
                        UserObjectPermission(
                            user=user, permission=perms["dataset_write"], content_type=ds_ct, object_pk=str(ds.pk)
                        )
                    )
        memberships = Membership.objects.bulk_create(memberships, batch_size=2000)
        custom_by_tenant: dict[int, list[int]] = {}
        for role_id, tenant_id in Role.objects.filter(builtin=False).values_list("pk", "tenant_id"):
            custom_by_tenant.setdefault(tenant_id, []).append(role_id)
        for membership in memberships:
            bindings.append(
                RoleBinding(
                    tenant_id=membership.tenant_id,
                    role_id=rng.choice(custom_by_tenant[membership.tenant_id]),
                    membership=membership,
                )
            )
        RoleBinding.objects.bulk_create(bindings, batch_size=2000)
        GroupObjectPermission.objects.bulk_create(group_grants, batch_size=2000)
        UserObjectPermission.objects.bulk_create(user_grants, batch_size=2000)


def add_elevations(rng: random.Random) -> tuple[int, int]:
    """Break-glass elevations in the data set, made afresh each run (their time boxes are relative to now).

    Every tenth member gets an active elevation to one of its tenant's custom roles (ends in an
    hour), every twentieth an elevation that already ended (the worker has not tidied it up):
    the first kind pays the clock check on the warm path, the second must be refused.
    """
    from datetime import timedelta

    from django.utils import timezone

    from apps.access.models import Role, RoleBinding
    from apps.tenants.models import Membership

    RoleBinding.objects.filter(expires_at__isnull=False).delete()
    custom_by_tenant: dict[int, list[tuple[int, str]]] = {}
    for role_id, tenant_id, name in Role.objects.filter(builtin=False).values_list("pk", "tenant_id", "name"):
        custom_by_tenant.setdefault(tenant_id, []).append((role_id, name))
    now = timezone.now()
    rows = []
    active = ended = 0
    members = Membership.objects.order_by("pk").values_list("pk", "tenant_id")
    for index, (membership_id, tenant_id) in enumerate(members):
        if index % 10 and index % 20 != 5:
            continue
        role_id, name = rng.choice(custom_by_tenant[tenant_id])
        live = index % 10 == 0
        expires_at = now + timedelta(hours=1) if live else now - timedelta(minutes=5)
        active, ended = active + live, ended + (not live)
        rows.append(
            RoleBinding(
                tenant_id=tenant_id,
                role_id=role_id,
                membership_id=membership_id,
                expires_at=expires_at,
                reason=f"break-glass elevation #{index}, approved by bench@example.com, until {expires_at:%H:%M} UTC",
            )
        )
    RoleBinding.objects.bulk_create(rows, batch_size=2000)
    return active, ended


def casbin_policy() -> tuple[list[list[str]], list[list[str]]]:
    """The same policy as casbin lines: p (role/user, tenant, object|*, action) and g (user, role, tenant)."""
    from guardian.models import GroupObjectPermission, UserObjectPermission

    from apps.access.models import Role, RoleBinding
    from apps.access.permissions import BUILTIN_ROLES, CODENAME_ACTIONS
    from apps.tenants.models import Membership

    p_lines: list[list[str]] = []
    g_lines: list[list[str]] = []
    role_by_group = {}
    for role in Role.objects.all():
        dom = str(role.tenant_id)
        sub = f"role:{role.tenant_id}:{role.key}"
        role_by_group[role.group_id] = (sub, dom)
        perms = BUILTIN_ROLES[role.key].permissions if role.builtin else role.permissions
        p_lines.extend([sub, dom, "*", action] for action in sorted(perms))
    for group_id, codename, object_pk in GroupObjectPermission.objects.values_list(
        "group_id", "permission__codename", "object_pk"
    ):
        sub, dom = role_by_group[group_id]
        kind = "dataset" if codename.startswith("dataset") else "tool"
        p_lines.append([sub, dom, f"{kind}:{object_pk}", CODENAME_ACTIONS[codename]])
    member_of = {}
    for membership_id, user_id, tenant_id, role_key in Membership.objects.values_list(
        "pk", "user_id", "tenant_id", "role"
    ):
        member_of[user_id] = (membership_id, tenant_id)
        g_lines.append([f"m:{membership_id}", f"role:{tenant_id}:{role_key}", str(tenant_id)])
    # Only bindings in force now: casbin has no clock, so an ended elevation is simply left out.
    for membership_id, tenant_id, role_key in RoleBinding.objects.current().values_list(
        "membership_id", "tenant_id", "role__key"
    ):
        g_lines.append([f"m:{membership_id}", f"role:{tenant_id}:{role_key}", str(tenant_id)])
    for user_id, codename, object_pk in UserObjectPermission.objects.values_list(
        "user_id", "permission__codename", "object_pk"
    ):
        membership_id, tenant_id = member_of[user_id]
        kind = "dataset" if codename.startswith("dataset") else "tool"
        p_lines.append([f"m:{membership_id}", str(tenant_id), f"{kind}:{object_pk}", CODENAME_ACTIONS[codename]])
    return p_lines, g_lines


def build_casbin(p_lines: list[list[str]], g_lines: list[list[str]]):
    import tempfile

    import casbin

    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as model_file:
        model_file.write(CASBIN_MODEL)
    # FastEnforcer indexes policy lines on two request fields that policy lines
    # share verbatim: the domain (tenant) and the action. The subject cannot be
    # indexed: requests name members, policy lines name roles.
    enforcer = casbin.FastEnforcer(model_file.name, cache_key_order=[1, 3])
    enforcer.add_policies(p_lines)
    enforcer.add_grouping_policies(g_lines)
    return enforcer


def requests(rng: random.Random, n: int, memberships, resources) -> list[tuple]:
    out = []
    for _ in range(n):
        m = rng.choice(memberships)
        action = rng.choice(ACTIONS)
        resource = None
        if action.startswith("dataset"):
            resource = rng.choice(resources[m.tenant_id]["dataset"])
        elif action == "tool.execute":
            resource = rng.choice(resources[m.tenant_id]["tool"])
        out.append((m, action, resource))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--sample-members", type=int, default=2_000)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--small", action="store_true", help="a tenth of the people, for quick runs")
    parser.add_argument("--database", default="", help="the benchmark's own database (created if missing)")
    args = parser.parse_args()
    rng = random.Random(20261126)
    global USERS_PER_TENANT
    if args.small:
        USERS_PER_TENANT //= 10

    url = database_url(args.database or (f"{DB_NAME}_small" if args.small else DB_NAME))
    ensure_database(url, drop=args.reseed)
    setup_django(url)
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.access import permsets
    from apps.access.decisions import authorize
    from apps.catalog.models import Dataset, Tool
    from apps.tenants.models import Membership, Tenant

    call_command("migrate", verbosity=0)
    if not Tenant.objects.filter(slug__startswith="bench-").exists():
        started = time.perf_counter()
        seed(rng)
        print(f"seeded in {time.perf_counter() - started:.1f} s")
    elevations_active, elevations_ended = add_elevations(rng)
    resources: dict[int, dict[str, list]] = {}
    for ds in Dataset.objects.all():
        resources.setdefault(ds.tenant_id, {"dataset": [], "tool": []})["dataset"].append(ds)
    for tool in Tool.objects.all():
        resources.setdefault(tool.tenant_id, {"dataset": [], "tool": []})["tool"].append(tool)
    ids = list(Membership.objects.values_list("pk", flat=True))
    sample_ids = rng.sample(ids, min(args.sample_members, len(ids)))

    # Cold: fresh membership (as a request loads it), empty process cache.
    cold_queries, cold_ms = [], []
    for membership_id in sample_ids[:200]:
        membership = Membership.objects.select_related("tenant").get(pk=membership_id)
        permsets.clear_local_cache()
        action = rng.choice(ACTIONS)
        resource = rng.choice(resources[membership.tenant_id]["dataset"]) if action.startswith("dataset") else None
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            authorize(membership, action, resource, log_denial=False)
            cold_ms.append((time.perf_counter() - started) * 1000)
        cold_queries.append(len(ctx.captured_queries))

    # Warm: the same membership objects, permission sets memoised.
    memberships = list(Membership.objects.select_related("tenant").filter(pk__in=sample_ids))
    for membership in memberships:
        authorize(membership, "tenant.view", log_denial=False)
    batch = requests(rng, args.decisions, memberships, resources)
    started = time.perf_counter()
    allowed = 0
    for membership, action, resource in batch:
        if authorize(membership, action, resource, log_denial=False):
            allowed += 1
    bastion_rate = len(batch) / (time.perf_counter() - started)
    # The warm path asks the database nothing, elevations included (their end is compared with the
    # clock in the memoised set): counted on a replay of part of the batch, outside the timing.
    with CaptureQueriesContext(connection) as ctx:
        for membership, action, resource in batch[:20_000]:
            authorize(membership, action, resource, log_denial=False)
    warm_queries = len(ctx.captured_queries)

    # New request: a fresh membership each time (no memo), the process LRU warm.
    prototypes = {m.pk: m for m in memberships}

    def fresh(membership):
        clone = copy.copy(membership)  # as the entry's query returns it: tenant joined, nothing memoised
        clone.__dict__.pop(permsets.MEMO_ATTR, None)
        return clone

    new_batch = batch[: max(20_000, args.decisions // 10)]
    fresh_members = [fresh(prototypes[m.pk]) for m, _, _ in new_batch]
    started = time.perf_counter()
    for member, (_, action, resource) in zip(fresh_members, new_batch, strict=True):
        authorize(member, action, resource, log_denial=False)
    first_rate = len(new_batch) / (time.perf_counter() - started)
    pages = [new_batch[i : i + PAGE_DECISIONS] for i in range(0, len(new_batch) - PAGE_DECISIONS + 1, PAGE_DECISIONS)]
    page_members = [fresh(prototypes[page[0][0].pk]) for page in pages]
    started = time.perf_counter()
    for member, page in zip(page_members, pages, strict=True):
        for _, action, resource in page:
            # Same member, same memo: one page's decisions (actions and resources of the request mix).
            if resource is not None and resource.tenant_id != member.tenant_id:
                resource = None
            authorize(member, action, resource, log_denial=False)
    page_rate = sum(len(page) for page in pages) / (time.perf_counter() - started)

    p_lines, g_lines = casbin_policy()
    enforcer = build_casbin(p_lines, g_lines)
    casbin_batch = [
        (
            f"m:{m.pk}",
            str(m.tenant_id),
            "*" if resource is None else f"{resource._meta.model_name}:{resource.pk}",
            action,
        )
        for m, action, resource in batch[: max(2_000, args.decisions // 50)]
    ]
    started = time.perf_counter()
    casbin_allowed = 0
    for request in casbin_batch:
        if enforcer.enforce(*request):
            casbin_allowed += 1
    casbin_rate = len(casbin_batch) / (time.perf_counter() - started)

    # Cross-check: both engines agree on the requests casbin evaluated.
    disagreements = sum(
        1
        for (m, action, resource), request in zip(batch, casbin_batch, strict=False)
        if bool(authorize(m, action, resource, log_denial=False)) != enforcer.enforce(*request)
    )

    ratio = bastion_rate / casbin_rate
    first_ratio = first_rate / casbin_rate
    page_ratio = page_rate / casbin_rate
    results = {
        "data": {
            "tenants": TENANTS,
            "users": TENANTS * USERS_PER_TENANT,
            "custom_roles": TENANTS * CUSTOM_ROLES_PER_TENANT,
            "datasets_and_tools": TENANTS * (DATASETS_PER_TENANT + TOOLS_PER_TENANT),
            "casbin_policy_lines": len(p_lines),
            "casbin_grouping_lines": len(g_lines),
            "elevations_active": elevations_active,
            "elevations_ended_not_tidied": elevations_ended,
        },
        "warm_authorize_per_s": round(bastion_rate),
        "warm_allowed_share": round(allowed / len(batch), 3),
        "casbin_fast_enforce_per_s": round(casbin_rate),
        "ratio": round(ratio, 1),
        "target_ratio": TARGET_RATIO,
        "new_request_first_decision_per_s": round(first_rate),
        "new_request_first_decision_us": round(1e6 / first_rate, 2),
        "new_request_first_ratio": round(first_ratio, 1),
        "new_request_page_decisions_per_s": round(page_rate),
        "new_request_page_ratio": round(page_ratio, 1),
        "target_new_request_ratio": TARGET_NEW_REQUEST_RATIO,
        "warm_queries": warm_queries,
        "cold_queries_max": max(cold_queries),
        "cold_ms_median": round(statistics.median(cold_ms), 2),
        "engines_disagree_on": disagreements,
    }
    out = write_results("access", results)
    rows = [
        ("warm authorize()", f"{bastion_rate:,.0f} decisions/s"),
        ("casbin FastEnforcer.enforce()", f"{casbin_rate:,.0f} decisions/s"),
        ("ratio (target ≥ 100×)", f"{ratio:,.1f}×"),
        ("new request, first decision", f"{first_rate:,.0f} decisions/s ({1e6 / first_rate:.1f} µs)"),
        ("  ratio to casbin (aim ≥ 100×)", f"{first_ratio:,.1f}×"),
        (f"new request, a page of {PAGE_DECISIONS} decisions", f"{page_rate:,.0f} decisions/s"),
        ("  ratio to casbin (aim ≥ 100×)", f"{page_ratio:,.1f}×"),
        ("warm authorize(): SQL queries in 20,000 decisions", str(warm_queries)),
        ("cold authorize(): max SQL queries (target ≤ 2)", str(max(cold_queries))),
        ("cold authorize(): median", f"{statistics.median(cold_ms):.2f} ms"),
        ("engines disagree on", f"{disagreements} of {len(casbin_batch)} requests"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"written to {out}")
    ok = ratio >= TARGET_RATIO and max(cold_queries) <= MAX_COLD_QUERIES and disagreements == 0 and warm_queries == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
