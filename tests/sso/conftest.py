"""Fixtures of the SSO tests: a real DNS server on loopback (``local_dns``) for domain verification."""

from __future__ import annotations

from tests.sso.dns_server import local_dns

__all__ = ["local_dns"]
