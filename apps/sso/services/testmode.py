"""Test sign-ins: an administrator's dry run of a connection, reported check by check.

``connection_test_complete`` evaluates the sign-in rules against a real assertion without
provisioning anyone or touching the session, records the outcome on the
connection and audits it; ``connection_test_fail`` does the same for a protocol
failure. ``parse_iso`` reads the stored timestamps back for templates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.sso import selectors
from apps.sso.models import ExternalIdentity, SSOConnection
from apps.sso.services._common import SUBJECT_MAX, _audit_actor, _clean_groups, _lock_connection, _policy
from apps.sso.services.domains import email_domain
from apps.sso.types import Assertion, SSOConfigError, SSOError
from apps.tenants.models import Tenant

# --- test sign-ins ------------------------------------------------------------------------------


@dataclass
class TestCheck:
    """One line of a test report; ``ok`` None means "for information"."""

    label: str
    ok: bool | None
    detail: str = ""


@dataclass
class TestReport:
    """What a test sign-in received and whether a real sign-in would work (JSON-safe, kept in the session)."""

    __test__ = False  # not a pytest test class

    connection_id: int
    ok: bool
    checks: list[TestCheck] = field(default_factory=list)
    subject: str = ""
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    groups: list[str] = field(default_factory=list)
    group_roles: dict[str, list[str]] = field(default_factory=dict)
    mfa_asserted: bool = False
    authn_context: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    error_code: str = ""
    error_message: str = ""
    at: str = ""

    @property
    def group_rows(self) -> list[tuple[str, list[str]]]:
        """Each received group with the names of the roles bound to it."""
        return [(group, self.group_roles.get(group, [])) for group in self.groups]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestReport:
        checks = [TestCheck(**c) for c in data.get("checks", [])]
        return cls(**{**data, "checks": checks})


ATTRIBUTES_SHOWN_MAX = 60
ATTRIBUTE_VALUE_MAX = 500


def _printable_attributes(attributes: dict[str, Any]) -> dict[str, str]:
    """Received attributes as text, bounded in number and size (the report lives in the session)."""
    shown: dict[str, str] = {}
    for key in sorted(attributes, key=str)[:ATTRIBUTES_SHOWN_MAX]:
        if str(key) in ("nonce", "at_hash", "c_hash"):
            continue
        value = attributes[key]
        text = ", ".join(str(v) for v in list(value)[:50]) if isinstance(value, list | tuple) else str(value)
        shown[str(key)[:200]] = text[:ATTRIBUTE_VALUE_MAX]
    return shown


def _known_account(tenant: Tenant | None, email: str) -> User | None:
    """The account behind ``email`` if the tester may know of it: a member of the connection's tenant (any status).

    For the platform's connection (tested by staff) only staff accounts. Anyone
    else is ``None``, as if no account existed, so a test sign-in cannot be used
    to find out whether an address has an account or is platform staff.
    """
    email = email.strip()
    if not email:
        return None
    if tenant is None:
        return User.objects.filter(email__iexact=email, is_staff=True).first()
    return User.objects.filter(email__iexact=email, memberships__tenant=tenant).distinct().first()


def _test_checks(connection: SSOConnection, assertion: Assertion) -> tuple[list[TestCheck], dict[str, list[str]]]:
    checks = [TestCheck("Signed response accepted", True, "Signature, audience, time window and replay checks passed.")]
    subject = (assertion.subject or "").strip()
    checks.append(
        TestCheck(
            "Subject", bool(subject) and len(subject) <= SUBJECT_MAX, subject[:120] or "No NameID / sub received."
        )
    )
    domain = email_domain(assertion.email)
    checks.append(
        TestCheck(
            "E-mail address",
            bool(domain),
            assertion.email or "No e-mail address received: check the attribute mapping.",
        )
    )
    tenant = connection.tenant
    identity = (
        ExternalIdentity.objects.select_related("user").filter(connection=connection, subject=subject).first()
        if subject
        else None
    )
    if domain:
        verified = selectors.domain_is_verified_for(tenant=tenant, domain=domain)
        if verified:
            detail = f"{domain} is a verified domain of {tenant.name if tenant else 'the platform'}."
        elif identity is not None:
            detail = f"{domain} is not verified, but this identity is already linked, so it can still sign in."
        else:
            detail = f"{domain} is not a verified domain of this organisation: new people cannot be signed in."
        checks.append(TestCheck("Verified domain", verified or identity is not None, detail))
    user = identity.user if identity else _known_account(tenant, assertion.email or "")
    if user is not None and user.is_staff and tenant is not None:
        checks.append(TestCheck("Account", False, "This is a platform staff account; it cannot use a tenant's IdP."))
    elif identity is not None:
        checks.append(TestCheck("Account", None, f"Already linked to {identity.user.email}."))
    elif user is not None:
        checks.append(TestCheck("Account", None, f"Would be linked to {user.email}, a member of this organisation."))
    else:
        # Said the same way whether or not an account exists elsewhere: the tester learns
        # nothing about people outside their own organisation (issue #7, item 14).
        checks.append(
            TestCheck("Account", None, "Not a member of this organisation yet: they join at the first sign-in.")
        )
    # A removal is this tenant's own record, so it may be told even when the membership row is gone.
    removed = user or User.objects.filter(email__iexact=(assertion.email or "").strip()).first()
    if tenant is not None and removed is not None and selectors.was_removed(tenant=tenant, user=removed):
        checks.append(
            TestCheck(
                "Membership",
                None,
                f"{removed.email} was removed from {tenant.name} by an administrator: refused until invited again.",
            )
        )
    groups = _clean_groups(assertion.groups)
    group_roles = selectors.roles_for_groups(tenant=tenant, groups=groups) if tenant is not None else {}
    mapped = sum(1 for roles in group_roles.values() if roles)
    if groups:
        group_detail = f"{len(groups)} received, {mapped} bound to roles."
    else:
        group_detail = "No groups received (check the groups attribute if you bind roles to groups)."
    checks.append(TestCheck("Groups", None, group_detail))
    if tenant is not None and _policy(tenant).mfa_required_admin_sso and not assertion.mfa_asserted:
        mfa_detail = "Not asserted: admins would be refused while the policy requires MFA at the IdP."
    else:
        mfa_detail = "Asserted." if assertion.mfa_asserted else "Not asserted."
    checks.append(TestCheck("MFA at the IdP", None, mfa_detail))
    return checks, group_roles


def connection_test_complete(*, connection: SSOConnection, assertion: Assertion, actor: User) -> TestReport:
    """Report on a test sign-in without signing anyone in or changing any account.

    The only write besides the audit event: when every check passes, the
    connection is marked tested (draft → tested). When the asserted e-mail is
    the tester's own account e-mail, the tester is also recorded as having
    signed in as themself under the current trust epoch: only such an admin
    may enable the connection (#9, item 2).
    """
    checks, group_roles = _test_checks(connection, assertion)
    ok = all(check.ok is not False for check in checks)
    asserted = (assertion.email or "").strip()
    as_self = bool(asserted) and asserted.casefold() == (actor.email or "").strip().casefold()
    checks.append(
        TestCheck(
            "Signed in as yourself",
            None,
            "Yes: you can enable this connection."
            if as_self
            else f"No ({actor.email} is your account): to enable it, test with your own account at the IdP.",
        )
    )
    now = timezone.now()
    report = TestReport(
        connection_id=connection.pk,
        ok=ok,
        checks=checks,
        subject=(assertion.subject or "")[:SUBJECT_MAX],
        email=(assertion.email or "")[:254],
        first_name=(assertion.first_name or "")[:150],
        last_name=(assertion.last_name or "")[:150],
        groups=_clean_groups(assertion.groups),
        group_roles=group_roles,
        mfa_asserted=bool(assertion.mfa_asserted),
        authn_context=(assertion.authn_context or "")[:300],
        attributes=_printable_attributes(dict(assertion.attributes or {})),
        at=now.isoformat(),
    )
    with transaction.atomic():
        locked = _lock_connection(connection)
        before = locked.status
        if ok:
            config = dict(locked.config or {})
            config["tested_at"] = now.isoformat()
            locked.config = config
            if locked.status == SSOConnection.Status.DRAFT:
                locked.status = SSOConnection.Status.TESTED
            if locked.first_tested_at is None:
                locked.first_tested_at = now
            if as_self:
                # Only the current epoch counts (a later trust change makes it stale); other epochs are dropped.
                locked.self_tested = {str(actor.pk): locked.trust_epoch} | {
                    k: v for k, v in (locked.self_tested or {}).items() if v == locked.trust_epoch
                }
            locked.save(update_fields=["config", "status", "first_tested_at", "self_tested"])
        record(
            "sso.connection_test",
            tenant=locked.tenant,
            actor=_audit_actor(actor),
            target=locked,
            result=AuditEvent.Result.SUCCESS if ok else AuditEvent.Result.FAILURE,
            metadata={
                "before": {"status": before},
                "after": {"status": locked.status},
                "email": report.email,
                "groups": report.groups[:50],
                "failed_checks": [c.label for c in checks if c.ok is False],
                "as_self": as_self,
            },
        )
    return report


def connection_test_fail(*, connection: SSOConnection, error: SSOError | SSOConfigError, actor: User) -> TestReport:
    """Report (and audit) a test sign-in the protocol layer refused; the connection is not changed."""
    code = getattr(error, "code", "config")
    message = getattr(error, "message", "") or str(error)
    report = TestReport(
        connection_id=connection.pk,
        ok=False,
        checks=[TestCheck("Signed response accepted", False, message)],
        error_code=code,
        error_message=message,
        at=timezone.now().isoformat(),
    )
    with transaction.atomic():
        record(
            "sso.connection_test",
            tenant=connection.tenant,
            actor=_audit_actor(actor),
            target=connection,
            result=AuditEvent.Result.FAILURE,
            metadata={"code": code, "reason": message[:500]},
        )
    return report


def parse_iso(value: str | None) -> datetime | None:
    """A stored ISO timestamp as an aware datetime, or None (for templates)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
