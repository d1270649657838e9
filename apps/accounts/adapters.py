"""django-allauth adapter: the hook where Bastion's sign-in policy plugs in.

Sign-up is closed by default (tenants and their first owners are created by
platform staff). The identity issue adds SSO-only and MFA rules here.
"""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(getattr(settings, "ACCOUNT_ALLOW_SIGNUPS", False))
