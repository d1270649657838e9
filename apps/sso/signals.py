"""Hooks on Django's and allauth's authentication signals: audit and the session's sign-in record.

Connected by ``SsoConfig.ready()``. The sign-in policy glue (it asks
``apps.sso.policy`` whether MFA is required), so it lives with the policy;
``accounts`` keeps the services it calls.

Signals only hook third-party flows (Django auth, allauth); our own flows call
services directly. A sign-in is recorded (session marker + ``auth.sign_in``)
here only when allauth's own records show a password sign-in; every other
sign-in path (the SSO flow) calls ``services.mark_session_sign_in`` itself, so
nothing is recorded twice. Every sign-in restarts the session clock.
"""

from __future__ import annotations

import time
from typing import Any

from allauth.account import app_settings as account_settings
from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authentication_failed, authenticator_added, authenticator_removed
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from apps.accounts import services
from apps.sso import policy
from apps.sso.services import emergency as emergency_services

MFA_FACTORS = [Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]


def password_sign_in_records(request: HttpRequest, user: Any) -> tuple[bool, bool]:
    """``(by_password, with_mfa)`` from allauth's records of the sign-in that just completed.

    allauth appends one record per step (``password``, then ``mfa`` after the
    second-factor stage) to the session; the last primary step decides the
    method, and an ``mfa`` step after it means a second factor was used.
    Re-authentications do not count, and neither does a password step older
    than the session's current sign-in record or than allauth's login timeout
    (a signed-in user who signs in again another way keeps old records).
    """
    records = get_authentication_records(request, user)
    primary = [
        i
        for i, r in enumerate(records)
        if r.get("method") in {"password", "socialaccount", "code"} and not r.get("reauthenticated")
    ]
    if not primary or records[primary[-1]].get("method") != "password":
        return False, False
    last = primary[-1]
    at = records[last].get("at")
    marker = services.session_sign_in(request)
    if not isinstance(at, int | float) or time.time() - at > account_settings.LOGIN_TIMEOUT:
        return False, False
    if marker is not None and isinstance(marker.get("at"), int | float) and marker["at"] >= at:
        return False, False
    return True, any(r.get("method") == "mfa" for r in records[last + 1 :])


def _grant_fresh_reauthentication(request: HttpRequest, user: Any) -> None:
    """Let the password just typed count as allauth's "recent reauthentication".

    allauth asks for the password again before MFA can be added; when
    Bastion forces enrolment seconds after a password sign-in that would ask
    twice in a row. allauth's own window (ACCOUNT_REAUTHENTICATION_TIMEOUT)
    still applies from this moment.
    """
    from allauth.account.internal.flows.login import record_authentication

    record_authentication(request, user, method="password", reauthenticated=True)


@receiver(user_logged_in)
def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    services.session_clock_start(request)
    by_password, with_mfa = password_sign_in_records(request, user)
    # An emergency account must have used its password and TOTP/WebAuthn, or the session ends here.
    emergency = emergency_services.sign_in_gate(request, user)
    if emergency is emergency_services.REFUSED or not by_password:
        return
    services.mark_session_sign_in(request, method="password", mfa=with_mfa)
    if isinstance(emergency, emergency_services.Admitted):
        emergency_services.sign_in_record(request, emergency)  # bound to its tenant, audited high, Owners told
        return
    if not with_mfa and policy.mfa_required_for(user):
        from allauth.mfa.adapter import get_adapter

        if not get_adapter().is_mfa_enabled(user, MFA_FACTORS):
            _grant_fresh_reauthentication(request, user)


@receiver(user_login_failed)
def _on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    identifier = str(credentials.get("email") or credentials.get("username") or "")
    services.record_sign_in_failure(identifier=identifier)
    emergency_services.failure_record(identifier=identifier, reason="bad_password")


@receiver(user_logged_out)
def _on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None or getattr(request, services.QUIET_LOGOUT_ATTR, False):
        return  # an expiry already recorded why the session ended
    services.record_sign_out(user=user)


@receiver(authentication_failed)
def _on_mfa_failed(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """A wrong second factor at sign-in: the password was right, the attempt still failed."""
    if kwargs.get("reauthentication"):
        return
    services.record_sign_in(user=user, method="password", success=False, reason="mfa_failed")
    emergency_services.failure_record(user=user, reason="mfa_failed")


@receiver(authenticator_added)
def _on_mfa_added(sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    """Enrolment is a privilege change: new session key; the code just entered proves the factor."""
    services.record_mfa_change(user=user, added=True, kind=authenticator.type)
    if authenticator.type in MFA_FACTORS and hasattr(request, "session"):
        services.mark_session_mfa(request, used=True)
        services.rotate_session(request)


@receiver(authenticator_removed)
def _on_mfa_removed(sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    services.record_mfa_change(user=user, added=False, kind=authenticator.type)
    if authenticator.type in MFA_FACTORS and hasattr(request, "session"):
        services.mark_session_mfa(request, used=False)
