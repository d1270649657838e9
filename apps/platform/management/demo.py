"""The demo data set that ``manage.py seed_demo`` creates and ``make run`` announces.

Plain constants (no Django imports) so that scripts/run.py can print the
sign-in details without setting Django up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OWNER_PASSWORD = "bastion-demo-owner"  # noqa: S105 (published demo credential, dev data only)
MEMBER_PASSWORD = "bastion-demo-member"  # noqa: S105
STAFF_PASSWORD = "bastion-demo-staff"  # noqa: S105


@dataclass(frozen=True)
class DemoUser:
    email: str
    full_name: str
    password: str | None  # None: an invited person who has not set a password yet
    role: str = ""  # role in the tenant; "" for platform staff
    pending: bool = False  # invited, not yet accepted


@dataclass(frozen=True)
class DemoTenant:
    slug: str
    name: str
    people: tuple[DemoUser, ...] = field(default_factory=tuple)  # the first one is the owner


STAFF = DemoUser("staff@bastion.example", "Sam Staff", STAFF_PASSWORD)

TENANTS = (
    DemoTenant(
        "acme",
        "Acme Corp",
        (
            DemoUser("owner@acme.example", "Olivia Owner", OWNER_PASSWORD, "owner"),
            DemoUser("admin@acme.example", "Adam Admin", MEMBER_PASSWORD, "admin"),
            DemoUser("dev@acme.example", "Dana Developer", MEMBER_PASSWORD, "developer"),
            DemoUser("viewer@acme.example", "Victor Viewer", MEMBER_PASSWORD, "viewer"),
            DemoUser("new.hire@acme.example", "", None, "member", pending=True),
        ),
    ),
    DemoTenant(
        "globex",
        "Globex",
        (DemoUser("owner@globex.example", "Gina Globex", OWNER_PASSWORD, "owner"),),
    ),
)


def sign_in_lines() -> list[str]:
    """Human-readable credentials, one per line, for the console output."""
    lines = [f"  platform staff  {STAFF.email:<24} {STAFF.password}"]
    for tenant in TENANTS:
        for person in tenant.people:
            if person.password:
                lines.append(f"  {tenant.slug + ' ' + person.role:<15} {person.email:<24} {person.password}")
    return lines
