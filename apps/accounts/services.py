"""Account writes, sign-in audit events and the session's record of how the user signed in.

The session carries two small records (JSON-safe, in the session store):

- ``bastion_auth``: how this session signed in, ``{"method": "password"|"saml"|"oidc",
  "idp": str, "mfa": bool, "at": epoch seconds}``. Written by ``mark_session_sign_in``:
  the password sign-in does it from the login signal, the SSO flow calls it after
  its own sign-in. MFA enrolment is forced only on ``"password"`` sessions.
- ``bastion_session``: the clock of the session lifetimes, ``{"start", "seen", ...}``,
  started at every sign-in and kept by ``apps.accounts.middleware.SessionPolicyMiddleware``.

This module knows nothing of tenants' sign-in policies (apps.sso.policy sits
above it); the adapter, the signal hooks and the middleware bring the two together.
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
from apps.tenants.models import Tenant

SESSION_SIGN_IN_KEY = "bastion_auth"
SESSION_CLOCK_KEY = "bastion_session"
SIGN_IN_METHODS = frozenset({"password", "saml", "oidc"})
SSO_METHODS = frozenset({"saml", "oidc"})
MAX_IDENTIFIER = 254


# --- sign-in audit -----------------------------------------------------------------------


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
    ``tenant``'s chain when the attempt concerns one tenant (e.g. its SSO
    policy refused it), else on the platform chain. Returns the event id.
    """
    return record(
        "auth.sign_in",
        tenant=tenant,
        actor=Actor.for_user(user),
        target=user,
        result=result or ("success" if success else "failure"),
        metadata=_sign_in_metadata(method=method, idp=idp, mfa=mfa, reason=reason, extra=extra),
    )


def record_sign_in_failure(
    *, identifier: str, method: str = "password", idp: str = "", reason: str = "", result: str = "failure"
) -> int:
    """A failed (or refused) sign-in of an unidentified person.

    The identifier is kept (truncated), the password never.
    """
    identifier = identifier[:MAX_IDENTIFIER]
    return record(
        "auth.sign_in",
        actor=Actor.anonymous(identifier),
        target_type="user",
        target_id="",
        result=result,
        metadata=_sign_in_metadata(method=method, idp=idp, mfa=False, reason=reason, extra={"identifier": identifier}),
    )


def record_sign_out(*, user: User) -> int:
    return record("auth.sign_out", actor=Actor.for_user(user), target=user)


def record_mfa_change(*, user: User, added: bool, kind: str) -> int:
    """Audit an authenticator added to or removed from the user's account (``auth.mfa_add`` / ``auth.mfa_remove``)."""
    return record(
        "auth.mfa_add" if added else "auth.mfa_remove",
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
    record(
        "auth.session_expired",
        actor=Actor.for_user(user),
        target=user,
        metadata={"reason": reason, **(metadata or {})},
    )
    if request.session.session_key:
        UserSession.objects.filter(session_key=request.session.session_key).delete()
    request._bastion_quiet_logout = True  # type: ignore[attr-defined]
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
    record(
        "auth.sign_out_everywhere",
        actor=Actor.for_user(by) if by is not None else Actor.system(),
        target=user,
        metadata={"sessions_ended": ended, **({"reason": reason} if reason else {})},
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
    record(
        "auth.session_end",
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
