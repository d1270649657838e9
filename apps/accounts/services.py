"""Account writes, sign-in audit events and the session's record of how the user signed in.

The session carries two small records (JSON-safe, in the session store):

- ``bastion_auth``: how this session signed in, ``{"method": "password"|"saml"|"oidc",
  "idp": str, "mfa": bool, "at": epoch seconds}``. Written by ``mark_session_sign_in``:
  the password sign-in does it from the login signal, the SSO flow calls it after
  its own sign-in. MFA enrolment is forced only on ``"password"`` sessions.
- ``bastion_session``: the clock of the session lifetimes, ``{"start", "seen", ...}``,
  started at every sign-in and kept by the session policy middleware.

This module knows nothing of tenants' sign-in policies (the SSO app's policy sits
above it, on a higher floor); the sign-in glue up there (allauth adapter, signal
hooks, middleware) brings the two together.

Where sign-in activity is recorded (issue #7, item 19). Every ``auth.*`` event
of a known person is recorded on the platform chain, as before, and a copy on
the chain of every tenant where they are an active member, so each tenant's
admins see their own members' sign-ins, failures, lockouts, MFA changes,
sign-outs and ended sessions in their own log. A tenant's copy carries nothing
about other tenants: no tenant name, no IdP name, no reason another tenant's
rule gave; only what happened to the account (method, result, MFA, the
session). Activity that belongs to one tenant stays there only: an SSO sign-in
is recorded by the SSO flow on the connection's tenant alone, and a refusal by
a tenant's policy on that tenant alone. A failed attempt for an e-mail that
has no account stays on the platform chain (no tenant learns of it).
"""

from __future__ import annotations

import time
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth import logout
from django.db import transaction
from django.http import HttpRequest
from django.middleware.csrf import rotate_token
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import Actor, record
from apps.tenants.models import Membership, Tenant

SESSION_SIGN_IN_KEY = "bastion_auth"
SESSION_CLOCK_KEY = "bastion_session"
SIGN_IN_METHODS = frozenset({"password", "saml", "oidc"})
SSO_METHODS = frozenset({"saml", "oidc"})
MAX_IDENTIFIER = 254
# Set on a request whose session this module ended and audited itself, so that the
# sign-out hook does not record a second, plain sign-out for it.
QUIET_LOGOUT_ATTR = "_bastion_quiet_logout"


# --- sign-in audit -----------------------------------------------------------------------


def _member_tenant_ids(user: User | None) -> list[int]:
    """The tenants whose admins should see this person's sign-in activity: active memberships."""
    if user is None or user.pk is None:
        return []
    return list(
        Membership.objects.filter(user_id=user.pk, status=Membership.Status.ACTIVE)
        .order_by("tenant_id")
        .values_list("tenant_id", flat=True)
    )


def _record_auth(
    action: str,
    *,
    user: User | None,
    actor: Actor,
    target: Any = None,
    target_type: str | None = None,
    target_id: Any = None,
    result: str = "success",
    metadata: dict[str, Any] | None = None,
    tenant_metadata: dict[str, Any] | None = None,
    tenant_actor: Actor | None = None,
) -> int:
    """Record an account-level ``auth.*`` event on the platform chain and on each of ``user``'s tenants.

    ``tenant_metadata`` and ``tenant_actor`` (default: ``metadata``, ``actor``) are
    what the tenant copies carry; callers pass reduced ones when the platform
    record could name another tenant or its admin. Returns the platform event's id.
    """
    common: dict[str, Any] = {
        "target": target,
        "target_type": target_type,
        "target_id": target_id,
        "result": result,
    }
    copy = metadata if tenant_metadata is None else tenant_metadata
    with transaction.atomic():  # all copies or none
        event_id = record(action, tenant=None, actor=actor, metadata=metadata, **common)
        for tenant_id in _member_tenant_ids(user):
            record(action, tenant=tenant_id, actor=tenant_actor or actor, metadata=copy, **common)
    return event_id


def _sign_in_metadata(*, method: str, idp: str, mfa: bool, reason: str, extra: dict[str, Any] | None) -> dict:
    metadata: dict[str, Any] = {"method": method, "mfa": bool(mfa)}
    if idp:
        metadata["idp"] = idp[:200]
    if reason:
        metadata["reason"] = reason
    if extra:
        metadata.update(extra)
    return metadata


def record_sign_in(
    *,
    user: User,
    method: str,
    success: bool = True,
    result: str | None = None,
    idp: str = "",
    mfa: bool = False,
    reason: str = "",
    tenant: Tenant | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    """Audit one sign-in attempt of a known user: ``auth.sign_in`` with method, idp, MFA and result.

    ``result`` (``success``/``failure``/``denied``) wins over ``success`` when given.
    IP, user agent and request id come from the request context. Recorded on
    ``tenant``'s chain only when the attempt concerns one tenant (e.g. its SSO
    policy refused it) or came through an IdP (SSO sign-ins belong to the
    connection's tenant); otherwise on the platform chain and, without IdP or
    extra details, on the chain of each tenant the person is an active member
    of. Returns the (first) event id.
    """
    outcome = result or ("success" if success else "failure")
    metadata = _sign_in_metadata(method=method, idp=idp, mfa=mfa, reason=reason, extra=extra)
    if tenant is not None or method in SSO_METHODS:
        return record(
            "auth.sign_in", tenant=tenant, actor=Actor.for_user(user), target=user, result=outcome, metadata=metadata
        )
    return _record_auth(
        "auth.sign_in",
        user=user,
        actor=Actor.for_user(user),
        target=user,
        result=outcome,
        metadata=metadata,
        tenant_metadata=_sign_in_metadata(method=method, idp="", mfa=mfa, reason=reason, extra=None),
    )


def record_sign_in_failure(
    *, identifier: str, method: str = "password", idp: str = "", reason: str = "", result: str = "failure"
) -> int:
    """A failed (or refused) sign-in of an unidentified person.

    The identifier is kept (truncated), the password never. When the
    identifier is the e-mail of an account, the attempt (a wrong password, a
    lockout) is also recorded on that person's tenants' chains; an e-mail with
    no account stays on the platform chain, so no tenant learns of it.
    """
    identifier = identifier[:MAX_IDENTIFIER]
    known = User.objects.filter(email__iexact=identifier).first() if identifier and not idp else None
    metadata = _sign_in_metadata(method=method, idp=idp, mfa=False, reason=reason, extra={"identifier": identifier})
    return _record_auth(
        "auth.sign_in",
        user=known,
        actor=Actor.anonymous(identifier),
        target=known,
        target_type="user",
        target_id="" if known is None else None,
        result=result,
        metadata=metadata,
    )


def record_sign_out(*, user: User) -> int:
    """Audit a sign-out (``auth.sign_out``) on the platform chain and the person's tenants."""
    return _record_auth("auth.sign_out", user=user, actor=Actor.for_user(user), target=user)


def record_mfa_change(*, user: User, added: bool, kind: str) -> int:
    """Audit an authenticator added to or removed from the user's account (``auth.mfa_add`` / ``auth.mfa_remove``)."""
    return _record_auth(
        "auth.mfa_add" if added else "auth.mfa_remove",
        user=user,
        actor=Actor.for_user(user),
        target=user,
        metadata={"type": kind},
    )


# --- the session's sign-in record ----------------------------------------------------------


def session_clock_start(request: HttpRequest, *, at: float | None = None) -> None:
    """Start the lifetime clock of the session (absolute and idle) at ``at`` (now by default)."""
    now = time.time() if at is None else at
    request.session[SESSION_CLOCK_KEY] = {"start": now, "seen": now, "checked": 0.0}


def session_sign_in(request: HttpRequest) -> dict[str, Any] | None:
    """How the current session signed in (see the module docstring), or ``None`` if it was not recorded."""
    value = request.session.get(SESSION_SIGN_IN_KEY)
    return value if isinstance(value, dict) else None


def mark_session_sign_in(
    request: HttpRequest,
    *,
    method: str,
    idp: str = "",
    mfa: bool = False,
    audit: bool = True,
    tenant: Tenant | None = None,
) -> dict[str, Any]:
    """Record in the session how the signed-in user got in, restart the session clock, and audit it.

    Call right after ``django.contrib.auth.login`` (the password sign-in does it
    from the login signal; the SSO flow calls it after its sign-in with
    ``method="saml"`` or ``"oidc"``, ``idp`` = the connection's name and ``mfa`` =
    whether the IdP asserted a second factor). SSO sessions are never forced
    through local MFA enrolment. With ``audit`` (the default) records
    ``auth.sign_in`` success with method, idp and MFA on ``tenant``'s chain (the
    platform's if ``None``) — pass ``audit=False`` only if the caller records it.
    Raises ValueError for an unknown method or an anonymous request.
    """
    if method not in SIGN_IN_METHODS:
        raise ValueError(f"unknown sign-in method {method!r}")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise ValueError("mark_session_sign_in needs a signed-in request")
    now = time.time()
    marker = {"method": method, "idp": idp[:200], "mfa": bool(mfa), "at": now}
    request.session[SESSION_SIGN_IN_KEY] = marker
    session_clock_start(request, at=now)
    if audit:
        record_sign_in(user=user, method=method, idp=idp, mfa=mfa, success=True, tenant=tenant)
    return marker


def mark_session_mfa(request: HttpRequest, *, used: bool) -> None:
    """Note in the session's sign-in record that a second factor was (``used``) or is no longer proven."""
    marker = session_sign_in(request)
    if marker is None:
        return
    marker["mfa"] = bool(used)
    marker.pop("checked", None)  # the enforcement middleware re-evaluates on the next request
    request.session[SESSION_SIGN_IN_KEY] = marker


def _track_session(request: HttpRequest) -> None:
    """(Re)create the session-list row of the current session key (allauth.usersessions)."""
    from allauth.usersessions.models import UserSession

    if request.META.get("REMOTE_ADDR"):  # allauth refuses to track a session without a client address
        UserSession.objects.create_from_request(request)


def rotate_session(request: HttpRequest) -> None:
    """Give the session a new key (and a new CSRF token), keeping its data: call after a privilege change.

    Django already rotates at sign-in; Bastion also rotates after MFA
    enrolment. The session-list row follows the new key.
    """
    from allauth.usersessions.models import UserSession

    old_key = request.session.session_key
    request.session.cycle_key()
    rotate_token(request)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if old_key:
            UserSession.objects.filter(session_key=old_key).delete()
        _track_session(request)


def session_expire(request: HttpRequest, *, reason: str, metadata: dict[str, Any] | None = None) -> None:
    """End the current session because a policy says so; audited as ``auth.session_expired``.

    ``reason`` is stable: ``idle``, ``absolute``, ``revoked`` or ``sso_required``.
    The sign-out itself is not recorded again as ``auth.sign_out``.
    """
    from allauth.usersessions.models import UserSession

    user = request.user
    # Tenant copies keep only the reason: the details may name the tenant whose rule ended it.
    _record_auth(
        "auth.session_expired",
        user=user,
        actor=Actor.for_user(user),
        target=user,
        metadata={"reason": reason, **(metadata or {})},
        tenant_metadata={"reason": reason},
    )
    if request.session.session_key:
        UserSession.objects.filter(session_key=request.session.session_key).delete()
    setattr(request, QUIET_LOGOUT_ATTR, True)  # read by the sign-out signal hook
    logout(request)


@transaction.atomic
def sign_out_everywhere(user: User, *, reason: str = "", by: User | None = None) -> int:
    """End every session of ``user``, including ones the session list never saw; audited.

    Deletes the user's tracked sessions (allauth.usersessions rows and their
    session-store entries) and stamps ``sessions_revoked_at``, which the session
    middleware checks, so a session that was never tracked ends on its next
    request too. Safe to call for a user with no sessions. Returns how many
    tracked sessions were ended.
    """
    from allauth.usersessions.models import UserSession

    now = timezone.now()
    User.objects.filter(pk=user.pk).update(sessions_revoked_at=now)
    user.sessions_revoked_at = now
    ended = 0
    for session in UserSession.objects.filter(user_id=user.pk):
        session.end()
        ended += 1
    actor = Actor.for_user(by) if by is not None else Actor.system()
    # Another tenant's admin may have caused this (removing the person there): the
    # tenant copies name neither that admin nor the reason, only that sessions ended.
    own = by is not None and by.pk == user.pk
    _record_auth(
        "auth.sign_out_everywhere",
        user=user,
        actor=actor,
        tenant_actor=actor if own else Actor.system(),
        target=user,
        metadata={"sessions_ended": ended, **({"reason": reason} if reason else {})},
        tenant_metadata={"sessions_ended": ended},
    )
    return ended


def user_session_end(*, request: HttpRequest, session_id: int) -> str | None:
    """End one of the signed-in user's own sessions (from the session list); audited.

    Returns ``"current"`` when it was the requester's own session (they are
    now signed out), ``"other"`` for another of their sessions, and ``None`` for
    an unknown id or one of another user's sessions (nothing happens then).
    """
    from allauth.usersessions.models import UserSession

    user = request.user
    session = UserSession.objects.filter(pk=session_id, user_id=user.pk).first()
    if session is None:
        return None
    current = session.session_key == request.session.session_key
    _record_auth(
        "auth.session_end",
        user=user,
        actor=Actor.for_user(user),
        target=user,
        metadata={"session": session.pk, "ip": session.ip, "current": current},
    )
    if current:
        session.delete()
        logout(request)
        return "current"
    session.end()
    return "other"


# --- e-mail and passwords ------------------------------------------------------------------


@transaction.atomic
def email_mark_verified(*, user: User) -> EmailAddress:
    """Mark the user's login address verified and primary in allauth's table.

    Only for callers that have proof of mailbox control (a signed link that
    was delivered to that address). Returns the allauth address row.
    """
    address = EmailAddress.objects.filter(user=user, email__iexact=user.email).first()
    if address is None:
        address = EmailAddress(user=user, email=user.email)
    address.verified = True
    address.primary = True
    address.save()
    EmailAddress.objects.filter(user=user, primary=True).exclude(pk=address.pk).update(primary=False)
    return address


@transaction.atomic
def password_set_from_invitation(*, user: User, password: str) -> User:
    """Set the first password of an invited person and verify their e-mail; audited.

    ``password`` must already have passed the password validators. Does not
    log the person in: sign-in (and any MFA or SSO policy) stays the only way in.
    """
    user.set_password(password)
    user.save(update_fields=["password"])
    email_mark_verified(user=user)
    record("auth.password_set", actor=Actor.for_user(user), target=user, metadata={"via": "invitation"})
    return user
