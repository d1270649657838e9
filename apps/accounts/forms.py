"""allauth form overrides."""

from __future__ import annotations

from typing import Any

from allauth.account.forms import LoginForm as AllauthLoginForm


class LoginForm(AllauthLoginForm):
    """allauth's sign-in form, with the e-mail prefilled from ``?login=`` (home-realm discovery hands over)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = kwargs.get("request") or getattr(self, "request", None)
        if request is not None and not self.is_bound:
            login = request.GET.get("login", "")[:254]
            if login:
                self.fields["login"].initial = login
