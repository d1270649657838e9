"""Architecture rules that code review alone would let slip.

The layer list below is DESIGN.md's "Layers" table; the rules are its
"Faces" section. Modules are classified by where they live and what they are,
never by a hand-kept list of file names:

* a **face** is a module (or package) named ``views``, ``forms``, ``tasks``,
  ``urls`` (and ``*_urls``), ``admin``, ``context_processors``, ``middleware``,
  ``templatetags``, ``management``, ``signals``, ``adapters`` (the hooks into
  allauth), ``dashboard`` (tenant dashboard cards), ``apps`` (the AppConfig that wires them), or any module of the
  face-only apps ``api`` and ``platform``;
* everything else under ``apps/`` is **domain** code.

Rules:

1. Deny by default: every view reachable from the URL map declares what it
   needs; every view under /t/<tenant>/ declares a catalog permission.
2. Faces never touch ``Model.objects`` of a tenant-owned model (every concrete
   subclass of a scoped base): they go through selectors and services.
3. Domain code imports downward only (floors below), with the exceptions
   DESIGN.md names (catalog asks access; floor-1 apps share models) and one
   order inside floor 1 (audit, then accounts, then tenants: see ``FLOORS``);
   it never imports a face, except a service that enqueues a task of its own
   app lazily (inside a function).
4. Nothing imports a face of another app except another face.
5. No import circles between modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.urls import URLPattern, URLResolver, get_resolver

from apps.access.permissions import PERMISSIONS

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "apps"

# DESIGN.md, "Layers": floor of each domain app. Face-only apps sit above all.
# Floor 1 is ordered inside: every security change is audited (invariant 7), so
# accounts and tenants call audit's writer, and tenants creates and signs out
# accounts; the reverse never happens. Models of floor-1 apps are shared freely.
FLOORS = {
    "core": 0,
    "audit": 1.0,
    "accounts": 1.1,
    "tenants": 1.2,
    "access": 2,
    "catalog": 2,
    "guardrails": 3,
    "billing": 3,
    "breakglass": 3,
    "keys": 3,
    "sso": 3,
    "alerts": 4,
    "runbook": 4,
}
FACE_ONLY_APPS = {"api", "platform"}
# Floor 1 apps may use each other's models only; catalog may ask access for decisions.
SIDEWAYS_ALLOWED = {("catalog", "access")}
FACE_PARTS = {
    "apps",  # AppConfig: wiring (connects allauth signals in ready())
    "views",
    "forms",
    "tasks",
    "urls",
    "admin",
    "context_processors",
    "middleware",
    "templatetags",
    "management",
    "signals",
    "adapters",
    "dashboard",  # tenant dashboard cards (apps.tenants.dashboard): they render, so they are faces
}
THIRD_PARTY_PREFIXES = ("accounts/", "django-admin/")


# --- the module graph ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function body


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _app(module: str) -> str:
    return module.split(".")[1]


def is_face(module: str) -> bool:
    parts = module.split(".")
    if len(parts) < 2:
        return False
    if parts[1] in FACE_ONLY_APPS:
        return True
    return any(part in FACE_PARTS or part.endswith("_urls") for part in parts[2:])


def _source_files() -> Iterator[Path]:
    for path in sorted(APPS.rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


MODULES = {_module_name(path): path for path in _source_files()}


def _resolve(name: str) -> str | None:
    """The project module an import statement loads (``apps.x.y.func`` → ``apps.x.y``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _function_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    lines.add(inner.lineno)
    return lines


def _imports() -> list[Import]:
    found: list[Import] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        lazy_lines = _function_lines(tree)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                names = [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                if not name.startswith("apps."):
                    continue
                target = _resolve(name)
                if target and target != module:
                    found.append(Import(module, target, node.lineno, node.lineno in lazy_lines))
    return found


IMPORTS = _imports()


def _where(imp: Import) -> str:
    return f"{MODULES[imp.source].relative_to(ROOT)}:{imp.line} imports {imp.target}"


def _allowed_lazy_enqueue(imp: Import) -> bool:
    """A service may enqueue a task of its own app, lazily (DESIGN.md, "Faces")."""
    return (
        imp.lazy
        and _app(imp.source) == _app(imp.target)
        and imp.target.split(".")[2:3] == ["tasks"]
        and "services" in imp.source.split(".")
    )


# --- 1. deny by default -----------------------------------------------------------------------


def _walk(patterns: list, prefix: str = "") -> Iterator[tuple[str, object]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def _own_views() -> Iterator[tuple[str, object]]:
    for route, callback in _walk(get_resolver().url_patterns):
        if not route.startswith(THIRD_PARTY_PREFIXES):
            yield route, callback


def test_every_view_declares_what_it_needs() -> None:
    undeclared = [route for route, view in _own_views() if not getattr(view, "required_permission", None)]
    assert undeclared == [], f"views without a permission declaration: {undeclared}"


def test_every_tenant_view_declares_a_catalog_permission() -> None:
    tenant_routes = [(route, view) for route, view in _own_views() if route.startswith("t/<str:tenant_slug>/")]
    assert tenant_routes, "no tenant routes found: the walk is broken"
    wrong = [route for route, view in tenant_routes if getattr(view, "required_permission", None) not in PERMISSIONS]
    assert wrong == [], f"tenant views without a catalog permission: {wrong}"


# --- 2. faces go through selectors and services -----------------------------------------------


def tenant_owned_models() -> set[str]:
    """Every concrete model that inherits a tenant-scoped base (``TenantOwned`` or ``OptionalTenantOwned``)."""
    from apps.tenants.models import TenantScoped

    return {
        model.__name__
        for model in django_apps.get_models()
        if issubclass(model, TenantScoped) and model.__module__.startswith("apps.")
    }


def test_faces_do_not_query_tenant_owned_models_directly() -> None:
    owned = tenant_owned_models()
    offenders = []
    for module, path in MODULES.items():
        if not is_face(module):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"objects", "_default_manager", "_base_manager"}
                and isinstance(node.value, ast.Name)
                and node.value.id in owned
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert offenders == [], "faces must use selectors/services: " + ", ".join(offenders)


def test_every_tenant_owned_model_is_scoped() -> None:
    """Each model with a ``tenant`` foreign key inherits a scoped base and so has ``for_tenant()``."""
    unscoped = [
        model.__name__
        for model in django_apps.get_models()
        if model.__module__.startswith("apps.")
        and any(field.name == "tenant" and field.is_relation for field in model._meta.get_fields())
        and not hasattr(model._default_manager, "for_tenant")
    ]
    assert unscoped == [], f"models with a tenant column but no for_tenant(): {unscoped}"


# --- 3–5. layers and circles -------------------------------------------------------------------


def layer_offenders(imports: list[Import]) -> list[str]:
    """Each import of domain code that goes up, sideways without leave, or into a face."""
    offenders = []
    for imp in imports:
        if is_face(imp.source):
            continue
        source_app, target_app = _app(imp.source), _app(imp.target)
        if is_face(imp.target):
            if not _allowed_lazy_enqueue(imp):
                offenders.append(f"domain imports a face: {imp.source}:{imp.line} → {imp.target}")
            continue
        if source_app == target_app:
            continue
        source_floor, target_floor = FLOORS.get(source_app, 9), FLOORS.get(target_app, 9)
        if target_floor < source_floor or (source_app, target_app) in SIDEWAYS_ALLOWED:
            continue
        if int(source_floor) == int(target_floor) == 1 and imp.target.endswith(".models"):
            continue
        offenders.append(f"floor {source_floor} → floor {target_floor}: {imp.source}:{imp.line} → {imp.target}")
    return offenders


def test_domain_code_imports_downward_only() -> None:
    offenders = layer_offenders(IMPORTS)
    assert offenders == [], "\n".join(offenders)


@pytest.mark.parametrize(
    ("imp", "allowed"),
    [
        (Import("apps.tenants.services", "apps.access.services", 1, lazy=False), False),  # up a floor
        (Import("apps.tenants.services", "apps.access.services", 1, lazy=True), False),  # lazily is no excuse
        (Import("apps.audit.services", "apps.tenants.services", 1, lazy=False), False),  # up inside floor 1
        (Import("apps.audit.models", "apps.tenants.models", 1, lazy=False), True),  # floor-1 models are shared
        (Import("apps.sso.services.notices", "apps.sso.tasks", 1, lazy=True), True),  # lazy enqueue
        (Import("apps.sso.services.notices", "apps.sso.tasks", 1, lazy=False), False),  # eager: a circle
        (Import("apps.sso.selectors", "apps.sso.views", 1, lazy=True), False),  # a face from domain code
        (Import("apps.catalog.selectors", "apps.access.decisions", 1, lazy=False), True),  # the sideways arrow
        (Import("apps.access.decisions", "apps.catalog.models", 1, lazy=False), False),  # not the other way
        (Import("apps.keys.services", "apps.sso.services", 1, lazy=False), False),  # floor 3 siblings
        (Import("apps.sso.views.flows", "apps.access.decisions", 1, lazy=False), True),  # faces import anything
    ],
)
def test_the_layer_rule_itself(imp: Import, allowed: bool) -> None:
    assert (layer_offenders([imp]) == []) is allowed


def test_core_imports_no_app() -> None:
    offenders = [_where(imp) for imp in IMPORTS if _app(imp.source) == "core" and _app(imp.target) != "core"]
    assert offenders == [], "\n".join(offenders)


def test_no_import_circles() -> None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in IMPORTS:
        if not _allowed_lazy_enqueue(imp):
            graph[imp.source].add(imp.target)
    circles = _strongly_connected(graph)
    assert circles == [], "import circles: " + "; ".join(" ↔ ".join(sorted(c)) for c in circles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


# --- sizes: STYLE.md's "split a module into a package when it passes roughly 600 lines" ----------

MAX_MODULE_LINES = 600
MAX_PROTOCOL_FUNCTION_LINES = 60
PROTOCOL_PACKAGES = ("apps/sso/saml/", "apps/sso/oidc/", "apps/sso/replay.py")


def test_no_module_is_over_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these into packages: {long}"


def test_protocol_functions_are_short() -> None:
    long = []
    for path in MODULES.values():
        if not str(path.relative_to(ROOT)).startswith(PROTOCOL_PACKAGES):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_PROTOCOL_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert long == [], "protocol functions over 60 lines: " + ", ".join(long)


# --- the checks must see real code ------------------------------------------------------------


def test_the_walks_see_real_code() -> None:
    """Guard against a vacuous pass: each walk finds what it is meant to find."""
    assert sum(1 for _ in _own_views()) >= 5
    assert any(is_face(m) and m.endswith(".views") for m in MODULES)
    assert not is_face("apps.access.services")
    assert is_face("apps.sso.views.settings")  # packages of faces are faces
    assert {"Membership", "Dataset", "Role"} <= tenant_owned_models()
    assert len(IMPORTS) > 100
    assert any(str(p.relative_to(ROOT)).startswith(PROTOCOL_PACKAGES) for p in MODULES.values())


@pytest.mark.parametrize(
    ("graph", "expected"),
    [({"a": {"b"}, "b": {"a"}, "c": set()}, [{"a", "b"}]), ({"a": {"b"}, "b": set()}, [])],
)
def test_the_circle_finder_finds_circles(graph: dict[str, set[str]], expected: list[set[str]]) -> None:
    assert [set(c) for c in _strongly_connected(graph)] == expected
