"""What the protocol packages (apps.sso.saml, apps.sso.oidc) hand to the sign-in flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SSOError(Exception):
    """A sign-in response the protocol rules refuse. ``code`` is stable (audited); ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SSOConfigError(ValueError):
    """An IdP configuration that cannot be used (bad metadata, certificate, discovery document)."""


@dataclass(frozen=True, slots=True)
class Assertion:
    """A verified identity from an IdP, already checked for signature, audience, time and replay."""

    subject: str  # SAML NameID or OIDC `sub`: stable per IdP
    email: str
    first_name: str = ""
    last_name: str = ""
    groups: tuple[str, ...] = ()
    mfa_asserted: bool = False  # SAML AuthnContextClassRef / OIDC amr-acr said a second factor was used
    authn_context: str = ""  # the raw AuthnContextClassRef or acr/amr, for the audit log
    attributes: dict[str, Any] = field(default_factory=dict)  # everything received, for "Test connection"
