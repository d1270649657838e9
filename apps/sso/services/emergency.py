"""Emergency accounts (#11, item 8): the writes, and what happens at each of their sign-ins.

The rules are in ``apps.sso.emergency`` (its docstring). Owner-only writes
(``account_create``, ``account_rotate``, ``account_set_disabled``,
``account_delete``, ``sign_in_acknowledge``) take the acting membership,
check it is an Owner of the account's tenant (``EmergencyError`` with
``forbidden`` otherwise), run in one transaction and are audited on the
tenant's chain with ``severity: high``. The credentials (password, TOTP
secret) exist only in the returned ``Credentials`` (never in an audit event,
a log line, the session or the database in clear: the password is hashed,
the TOTP secret is allauth's authenticator row).

Sign-in hooks, called by the allauth glue (``apps.sso.adapters``,
``apps.sso.signals``):

- ``password_step_refusal``: after the password was right, refuse an account
  that is disabled, lost its membership or has no TOTP/WebAuthn factor;
- ``code_refusal``: at the second-factor form, a recovery code is refused;
- ``sign_in_gate`` / ``sign_in_record``: after Django's login, refuse a sign-in
  that did not use the password *and* TOTP or WebAuthn (the session ends at
  once), else bind the session to the account's tenant, audit high, keep an
  ``EmergencySignIn`` for the dashboard and e-mail every Owner after commit;
- ``failure_record``: a wrong password, a disabled account or a wrong second
  factor is audited high on the tenant's chain as well.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from apps.access import members
from apps.access.escalation import AccessError, ensure_may_hand_out_builtin_role
from apps.accounts import services as account_services
from apps.accounts.models import User
from apps.audit.services import Actor, record
from apps.core import context
from apps.sso import emergency
from apps.sso.models import EmergencyAccount, EmergencySignIn
from apps.tenants.models import Membership, Tenant
from apps.tenants.services import TenantError

OWNER_ONLY = "Only an Owner of this organisation can manage emergency accounts or acknowledge their sign-ins."
LABEL_MAX = 60
# Unambiguous characters (no 0/O, 1/l/I): the password is read off a sheet of paper in an emergency.
PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"  # noqa: S105 (an alphabet, not a password)
PASSWORD_GROUPS, PASSWORD_GROUP_SIZE = 6, 5  # 30 random characters: about 172 bits
REFUSED = object()  # ``sign_in_gate``'s answer for a sign-in it refused


class EmergencyError(ValueError):
    """A change the emergency-account rules refuse; ``forbidden`` means "not an Owner" (403), else bad input."""

    def __init__(self, message: str, *, field: str | None = None, forbidden: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.forbidden = forbidden


@dataclass(frozen=True)
class Credentials:
    """What an Owner must write down now: shown once, never stored in clear (kept out of ``repr``)."""

    account: EmergencyAccount
    login: str
    password: str = field(repr=False)
    totp_secret: str = field(repr=False)
    totp_uri: str = field(repr=False)


# --- helpers ---------------------------------------------------------------------------------


def _require_owner(actor: Membership | None, tenant: Tenant) -> Membership:
    if actor is None or actor.tenant_id != tenant.pk or not emergency.is_owner(actor):
        raise EmergencyError(OWNER_ONLY, forbidden=True)
    return actor


def generate_password() -> str:
    """A strong random password in dash-separated groups (``secrets``; passes Django's validators)."""
    groups = (
        "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_GROUP_SIZE)) for _ in range(PASSWORD_GROUPS)
    )
    return "-".join(groups)


def _new_login(tenant: Tenant) -> str:
    # Random, so the address does not reveal how many accounts exist and is not guessed from the label.
    return f"break-glass-{secrets.token_hex(4)}@{tenant.slug}.{emergency.login_domain()}"


def _issue_factor(user: User) -> tuple[str, str]:
    """Replace every authenticator of ``user`` by a new TOTP one; returns ``(secret, otpauth URI)``."""
    from allauth.mfa.adapter import get_adapter
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    Authenticator.objects.filter(user=user).delete()  # old TOTP, WebAuthn keys, recovery codes
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret, get_adapter().build_totp_url(user, secret)


def _lock(account: EmergencyAccount) -> EmergencyAccount:
    locked = (
        EmergencyAccount.objects.for_tenant(account.tenant_id)
        .select_for_update(of=("self",))
        .select_related("user", "tenant")
        .filter(pk=account.pk)
        .first()
    )
    if locked is None:
        raise EmergencyError("This emergency account no longer exists.")
    return locked


def _membership(account: EmergencyAccount) -> Membership | None:
    return Membership.objects.for_tenant(account.tenant_id).filter(user_id=account.user_id).first()


def _facts(account: EmergencyAccount) -> dict[str, Any]:
    return {"label": account.label, "login": account.user.email, "severity": "high"}


# --- Owner writes ----------------------------------------------------------------------------


@transaction.atomic
def account_create(*, tenant: Tenant, actor: Membership, label: str, role: str = Membership.Role.OWNER) -> Credentials:
    """Create an emergency account of ``tenant`` holding built-in ``role``; returns its credentials, once.

    ``actor`` must be an Owner (``emergency.is_owner``) and, through
    ``apps.access.members``, hold everything ``role`` carries. The account is a
    new user with a generated password, a verified login address under the
    emergency domain, a TOTP authenticator and an active membership of
    ``tenant`` only. Raises EmergencyError; nothing is written then.
    """
    _require_owner(actor, tenant)
    label = " ".join((label or "").split())
    if not label:
        raise EmergencyError("Give the account a label, e.g. where its credentials are kept.", field="label")
    if len(label) > LABEL_MAX:
        raise EmergencyError(f"Keep the label under {LABEL_MAX} characters.", field="label")
    if EmergencyAccount.objects.for_tenant(tenant).filter(label__iexact=label).exists():
        raise EmergencyError(f"An emergency account labelled “{label}” already exists.", field="label")
    password = generate_password()
    user = User.objects.create_user(email=_new_login(tenant), password=password, full_name=f"Emergency: {label}")
    account_services.email_mark_verified(user=user)  # the login name is ours; no mailbox to prove
    try:
        members.member_add_active(tenant=tenant, user=user, role=role, actor=actor, via="emergency_account")
    except (AccessError, TenantError) as exc:
        raise EmergencyError(str(exc), field="role") from None
    try:
        with transaction.atomic():
            account = EmergencyAccount.objects.create(
                tenant=tenant, user=user, label=label, role=role, created_by=actor.user
            )
    except IntegrityError:  # the same label created at the same moment in another request
        raise EmergencyError(f"An emergency account labelled “{label}” already exists.", field="label") from None
    secret, uri = _issue_factor(user)
    record(
        "sso.emergency_account_create",
        tenant=tenant,
        actor=Actor.for_user(actor.user),
        target=account,
        metadata={**_facts(account), "role": role},
    )
    return Credentials(account=account, login=user.email, password=password, totp_secret=secret, totp_uri=uri)


@transaction.atomic
def account_rotate(*, account: EmergencyAccount, actor: Membership) -> Credentials:
    """New password and TOTP secret (shown once), every other authenticator removed, every session ended.

    The old password and authenticator stop working at once. Owners only. Raises EmergencyError.
    """
    _require_owner(actor, account.tenant)
    locked = _lock(account)
    user = locked.user
    password = generate_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    secret, uri = _issue_factor(user)
    locked.rotated_at = timezone.now()
    locked.save(update_fields=["rotated_at"])
    ended = account_services.sign_out_everywhere(user, reason="emergency_account_rotated", by=actor.user)
    record(
        "sso.emergency_account_rotate",
        tenant=locked.tenant,
        actor=Actor.for_user(actor.user),
        target=locked,
        metadata={**_facts(locked), "sessions_ended": ended},
    )
    return Credentials(account=locked, login=user.email, password=password, totp_secret=secret, totp_uri=uri)


@transaction.atomic
def account_set_disabled(*, account: EmergencyAccount, actor: Membership, disabled: bool) -> EmergencyAccount:
    """Disable an emergency account (its sessions end, sign-in is refused) or enable it again. Owners only.

    Enabling hands its role back, so it passes the no-escalation rule again. A
    change to the current state does nothing (not audited).
    """
    _require_owner(actor, account.tenant)
    locked = _lock(account)
    if disabled == locked.is_disabled:
        return locked
    user = locked.user
    if not disabled:
        membership = _membership(locked)
        if membership is not None:
            try:
                ensure_may_hand_out_builtin_role(actor=actor, tenant=locked.tenant, key=membership.role)
            except AccessError as exc:
                raise EmergencyError(str(exc)) from None
    locked.disabled_at = timezone.now() if disabled else None
    locked.save(update_fields=["disabled_at"])
    # An inactive user is refused by every authentication backend and every open session.
    User.objects.filter(pk=user.pk).update(is_active=not disabled)
    ended = 0
    if disabled:
        ended = account_services.sign_out_everywhere(user, reason="emergency_account_disabled", by=actor.user)
    record(
        "sso.emergency_account_disable" if disabled else "sso.emergency_account_enable",
        tenant=locked.tenant,
        actor=Actor.for_user(actor.user),
        target=locked,
        metadata={**_facts(locked), "sessions_ended": ended},
    )
    return locked


@transaction.atomic
def account_delete(*, account: EmergencyAccount, actor: Membership) -> None:
    """Delete an emergency account: its sessions end, its membership goes (tenants' rules), then its user.

    Owners only; refused (EmergencyError) if it is the last active owner. Its
    past sign-ins stay listed (with the label) until acknowledged.
    """
    _require_owner(actor, account.tenant)
    locked = _lock(account)
    user = locked.user
    facts = _facts(locked)
    record(
        "sso.emergency_account_delete",
        tenant=locked.tenant,
        actor=Actor.for_user(actor.user),
        target=locked,
        metadata=facts,
    )
    account_services.sign_out_everywhere(user, reason="emergency_account_deleted", by=actor.user)
    membership = _membership(locked)
    if membership is not None:
        try:
            members.member_remove(membership=membership, actor=actor)
        except (AccessError, TenantError) as exc:
            raise EmergencyError(str(exc)) from None
    # Dead at once, in this transaction: no password, no factor, inactive. The user row goes after
    # commit, once the sign-out that the membership removal queued has run for it.
    Authenticator.objects.filter(user=user).delete()
    user.set_unusable_password()
    user.is_active = False
    user.save(update_fields=["password", "is_active"])
    locked.delete()
    transaction.on_commit(functools.partial(_user_delete, user.pk), robust=True)


def _user_delete(user_id: int) -> None:
    User.objects.filter(pk=user_id, is_active=False).delete()


@transaction.atomic
def sign_in_acknowledge(*, sign_in: EmergencySignIn, actor: Membership) -> bool:
    """An Owner has seen this emergency sign-in: it leaves the dashboard. Audited.

    Returns False (nothing recorded) if another Owner acknowledged it first:
    the conditional update lets exactly one of two simultaneous clicks through.
    """
    _require_owner(actor, sign_in.tenant)
    now = timezone.now()
    changed = (
        EmergencySignIn.objects.for_tenant(sign_in.tenant_id)
        .filter(pk=sign_in.pk, acknowledged_at__isnull=True)
        .update(acknowledged_at=now, acknowledged_by=actor.user)
    )
    if not changed:
        return False
    record(
        "sso.emergency_sign_in_acknowledge",
        tenant=sign_in.tenant_id,
        actor=Actor.for_user(actor.user),
        target=sign_in,
        metadata={"label": sign_in.label, "login": sign_in.login, "occurred_at": sign_in.occurred_at.isoformat()},
    )
    return True


# --- sign-in ---------------------------------------------------------------------------------


def _audit_attempt(account: EmergencyAccount, *, result: str, reason: str = "", extra: dict | None = None) -> int:
    """``sso.emergency_sign_in`` on the account's tenant chain, high severity (IP and user agent from the request).

    A failed attempt is not the account acting (whoever typed was not proven to
    hold its credentials): its actor is anonymous, named by the login address.
    """
    metadata = {**_facts(account), **({"reason": reason} if reason else {}), **(extra or {})}
    failed = result == "failure"
    return record(
        "sso.emergency_sign_in",
        tenant=account.tenant_id,
        actor=Actor.anonymous(account.user.email) if failed else Actor.for_user(account.user),
        target=account,
        result=result,
        metadata=metadata,
    )


def _has_factor(user: Any) -> bool:
    return Authenticator.objects.filter(user_id=user.pk, type__in=emergency.FACTORS).exists()


def password_step_refusal(user: Any) -> str | None:
    """After a right password: why this emergency account may not go on to its second factor, or None.

    ``None`` too for anyone who is not an emergency account (one query). A
    refusal is audited high (``denied``) and the message is for the person.
    """
    account = emergency.account_for_user(user)
    if account is None:
        return None
    membership = _membership(account)
    if account.is_disabled:
        reason, message = "disabled", "This emergency account is disabled. Ask an Owner to enable it."
    elif membership is None or membership.status != Membership.Status.ACTIVE:
        reason, message = "membership_inactive", "This emergency account no longer has access to its organisation."
    elif not _has_factor(user):
        reason = "no_second_factor"
        message = "This emergency account has no second factor. Ask an Owner to rotate its credentials."
    else:
        return None
    _audit_attempt(account, result="denied", reason=reason)
    return message


def _second_factor(request: HttpRequest, user: Any) -> tuple[bool, str]:
    """``(by_password, factor type)`` of the sign-in that just completed, from allauth's records."""
    records = get_authentication_records(request, user)
    primary = [i for i, r in enumerate(records) if r.get("method") != "mfa" and not r.get("reauthenticated")]
    if not primary or records[primary[-1]].get("method") != "password":
        return False, ""
    used = [r.get("type", "") for r in records[primary[-1] + 1 :] if r.get("method") == "mfa"]
    return True, str(used[-1]) if used else ""


@dataclass(frozen=True)
class Admitted:
    """An emergency sign-in that passed ``sign_in_gate``: the account and the second factor it used."""

    account: EmergencyAccount
    factor: str


def code_refusal(user: Any, authenticator_type: str) -> str | None:
    """At the second-factor form: a recovery code does not sign an emergency account in (audited high)."""
    if authenticator_type in emergency.FACTORS:
        return None
    account = emergency.account_for_user(user)
    if account is None:
        return None
    _audit_attempt(account, result="denied", reason="recovery_code")
    return "Emergency accounts sign in with their TOTP code or security key, not with a recovery code."


def sign_in_gate(request: HttpRequest, user: Any) -> Admitted | object | None:
    """Right after Django's login: ``None`` (not an emergency account), ``REFUSED``, or ``Admitted``.

    An emergency sign-in must have used the password and then TOTP or WebAuthn;
    anything else (a recovery code, no factor, a sign-in that was not by
    password) is audited high as ``denied`` and gets no exemption; without a
    factor every session of the account is revoked (this one ends on its next
    request). One query for everyone else.
    """
    account = emergency.account_for_user(user)
    if account is None:
        return None
    by_password, factor = _second_factor(request, user)
    if not by_password:
        # Not our sign-in path (e.g. an identity provider): audited; no exemption is granted.
        _audit_attempt(account, result="denied", reason="not_password")
        return REFUSED
    if factor not in emergency.FACTORS:
        # A backstop (the password step and the code form refuse these first). Logging out inside
        # Django's login would break allauth's flow; revoking every session of the account ends this
        # one on its next request instead (the session middleware compares its start with the stamp).
        _audit_attempt(account, result="denied", reason="recovery_code" if factor else "no_second_factor")
        account_services.sign_out_everywhere(account.user, reason="emergency_without_second_factor")
        return REFUSED
    return Admitted(account=account, factor=factor)


def sign_in_record(request: HttpRequest, admitted: Admitted) -> EmergencySignIn:
    """A completed emergency sign-in: bind the session to the tenant, audit high, list it, tell every Owner."""
    account, factor = admitted.account, admitted.factor
    marker = account_services.session_sign_in(request) or {}
    marker[emergency.SIGN_IN_MARKER] = account.tenant_id
    request.session[account_services.SESSION_SIGN_IN_KEY] = marker
    ctx = context.current()
    with transaction.atomic():
        now = timezone.now()
        EmergencyAccount.objects.for_tenant(account.tenant_id).filter(pk=account.pk).update(last_used_at=now)
        sign_in = EmergencySignIn.objects.create(
            tenant_id=account.tenant_id,
            account=account,
            label=account.label,
            login=account.user.email,
            ip=ctx.ip or None,
            user_agent=(ctx.user_agent or "")[:512],
            mfa_type=factor,
        )
        _audit_attempt(account, result="success", extra={"mfa": factor, "sign_in": sign_in.pk})
        transaction.on_commit(functools.partial(_enqueue_notice, sign_in.pk), robust=True)
    return sign_in


def failure_record(*, identifier: str = "", user: Any = None, reason: str) -> bool:
    """Audit a failed attempt at an emergency account (by login address or user) high; False if it is none."""
    account = emergency.account_for_user(user) if user is not None else emergency.account_for_login(identifier)
    if account is None:
        return False
    if reason == "bad_password" and account.is_disabled:
        reason = "disabled"
    _audit_attempt(account, result="failure", reason=reason)
    return True


# --- the Owners' e-mail ----------------------------------------------------------------------


def _enqueue_notice(sign_in_id: int) -> None:
    # Lazy: the task module is a face that imports this service (a service may enqueue its own app's task).
    from apps.sso.tasks import notify_emergency_sign_in

    notify_emergency_sign_in.delay(sign_in_id)


def sign_in_notice_send(*, sign_in_id: int) -> int:
    """E-mail every Owner of the sign-in's tenant, one message each; returns how many. SMTP errors propagate."""
    sign_in = emergency.sign_in_for_notice(sign_in_id=sign_in_id)
    if sign_in is None:
        return 0
    tenant = sign_in.tenant
    recipients = emergency.owner_addresses(tenant=tenant)
    url = settings.SITE_URL.rstrip("/") + reverse("tenants:dashboard", kwargs={"tenant_slug": tenant.slug})
    subject = f"Security: emergency account “{sign_in.label}” signed in to {tenant.name}"
    body = render_to_string("sso/email/emergency_sign_in.txt", {"sign_in": sign_in, "tenant": tenant, "url": url})
    for address in recipients:
        send_mail(subject=subject, message=body, from_email=None, recipient_list=[address])
    return len(recipients)
