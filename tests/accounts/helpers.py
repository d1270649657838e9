"""Helpers for tests that sign in the way people do: SSO connections, TOTP devices and codes.

Other test packages may import these (e.g. a browser test that enrols the owner's
authenticator in its fixture and types ``totp_code(secret)`` at the MFA stage).
"""

from __future__ import annotations

import time
from typing import Any

from django.test import Client

from apps.sso.models import SignInPolicy, SSOConnection
from apps.tenants.models import Tenant

LOGIN = "/accounts/login/"
MFA_STAGE = "/accounts/2fa/authenticate/"
TOTP_ACTIVATE = "/accounts/2fa/totp/activate/"


def totp_code(secret: str, *, at: float | None = None) -> str:
    """The code an authenticator app shows for ``secret`` now (or at ``at``)."""
    from allauth.mfa import app_settings
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    counter = int(time.time() if at is None else at) // app_settings.TOTP_PERIOD
    return format_hotp_value(hotp_value(secret, counter))


def enrol_totp(user: Any) -> str:
    """Give ``user`` a TOTP authenticator directly (no pages); returns its secret for ``totp_code``."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def sso_connection(tenant: Tenant | None, *, name: str = "Okta", status: str = "enabled") -> SSOConnection:
    """An SSO connection of ``tenant`` (the platform's for ``None``); enabled unless told otherwise."""
    return SSOConnection.objects.create(tenant=tenant, kind="saml", name=name, status=status)


def set_policy(tenant: Tenant | None, **values: Any) -> SignInPolicy:
    """Store a sign-in policy row for ``tenant`` with ``values`` (no audit: test set-up)."""
    policy, _ = SignInPolicy.objects.update_or_create(tenant=tenant, defaults=values)
    return policy


def password_sign_in(client: Client, email: str, password: str, *, next_url: str = "") -> Any:
    """POST the sign-in form; returns the response (a 302 on success)."""
    url = f"{LOGIN}?next={next_url}" if next_url else LOGIN
    return client.post(url, {"login": email, "password": password})


def console_session(user: Any, *, method: str, tenant_id: int | None = None) -> Client:
    """A client whose session looks as if one of our sign-in paths opened it a moment ago (with MFA).

    ``method`` is ``"password"``, ``"saml"`` or ``"oidc"``; an SSO session is bound to
    ``tenant_id``'s IdP. The session policy was checked just now, so requests made
    within the minute do not re-read it (the steady state of a console session).
    """
    from apps.accounts import services
    from apps.sso.services import SESSION_SSO_KEY

    client = Client()
    client.force_login(user)
    now = time.time()
    session = client.session
    session[services.SESSION_SIGN_IN_KEY] = {"method": method, "idp": "", "mfa": True, "at": now}
    session[services.SESSION_CLOCK_KEY] = {"start": now, "seen": now, "checked": now, "absolute": 480, "idle": 30}
    if method != "password":
        session[SESSION_SSO_KEY] = {"connection": "x", "tenant": tenant_id, "at": now}
    session.save()
    return client
