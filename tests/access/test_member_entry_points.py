"""Every face hands out membership roles through ``apps.access.members``, never around it.

``apps.tenants.services`` cannot ask ``apps.access`` (it is on the floor below),
so the no-escalation rule for invitations and role changes, and the removal of
a leaving member's object grants, live in ``apps.access.members``. This walk
fails when any other module calls the tenants writes it wraps directly.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRAPPED = {
    "membership_invite",
    "membership_resend",
    "membership_change_role",
    "membership_set_disabled",
    "membership_remove",
}
ALLOWED = {Path("apps/tenants/services.py"), Path("apps/access/members.py")}


def _called_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def test_nothing_calls_the_wrapped_tenants_writes_directly() -> None:
    offenders = []
    for path in (ROOT / "apps").rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _called_name(node) in WRAPPED:
                offenders.append(f"{relative}:{node.lineno} {_called_name(node)}")
    assert offenders == [], "use apps.access.members instead: " + ", ".join(offenders)


def test_the_walk_sees_the_wrappers() -> None:
    source = (ROOT / "apps/access/members.py").read_text(encoding="utf-8")
    calls = {_called_name(n) for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)}
    assert calls >= WRAPPED
