"""bastion_client: a small Python client for Bastion's runtime API (one file, needs only ``requests``).

    from bastion_client import BastionClient

    bastion = BastionClient("https://bastion.example.com", client_id="…", client_secret="…")
    decision = bastion.authorize(action="dataset.read", resource=("dataset", "42"))
    if decision["allowed"]: ...
    bastion.authorize(action="tool.execute", subject={"type": "member", "email": "ana@example.com"},
                      resource=("tool", "7"))
    bastion.check_tool_call(tool_id="7", arguments={"q": "…"}, datasets=["42"])
    bastion.me()

Tokens come from ``POST /api/v1/oauth/token`` (OAuth 2.0 client credentials,
``client_secret_basic``) and are kept until shortly before they expire; a
401 (the token expired early, its key was rotated out, the client's tokens were
revoked) fetches a new token and retries the call once. A 429 is raised as
``RateLimited`` with ``retry_after`` (the client does not sleep for you). Every
other error is ``BastionError`` carrying the RFC 9457 problem document.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

__all__ = ["BastionClient", "BastionError", "RateLimited"]

TOKEN_PATH = "/api/v1/oauth/token"  # noqa: S105  # a path, not a password
API_PATH = "/api/v1/"
REFRESH_MARGIN_S = 30  # fetch a new token this long before the current one expires


class BastionError(Exception):
    """An error answer: ``status`` and the problem document (``problem``: type, title, detail, …)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail') or problem.get('error', '')}")
        self.status = status
        self.problem = problem


class RateLimited(BastionError):  # noqa: N818  # reads as the condition, like requests' Timeout
    """429: over the client's rate limit; try again after ``retry_after`` seconds."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float) -> None:
        super().__init__(status, problem)
        self.retry_after = retry_after


class BastionClient:
    """A runtime-API client for one API client (id and secret), with token caching and refresh on 401."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        client_secret: str,
        scope: str = "",
        audience: str = "",
        session: requests.Session | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.audience = audience
        self.session = session or requests.Session()
        self.timeout = timeout
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.tokens_fetched = 0  # how many times the token endpoint was called (tests, metrics)

    # --- tokens ---------------------------------------------------------------------------------

    def token(self, *, force: bool = False) -> str:
        """A valid access token: the cached one, or a new one when it is (nearly) expired or ``force``."""
        with self._lock:
            if force or not self._token or time.time() >= self._expires_at - REFRESH_MARGIN_S:
                self._fetch_token()
            return self._token

    def _fetch_token(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        response = self.session.post(
            self.base_url + TOKEN_PATH, data=form, auth=(self.client_id, self._secret), timeout=self.timeout
        )
        if response.status_code != 200:
            raise BastionError(response.status_code, _json(response))
        body = response.json()
        self._token = body["access_token"]
        self._expires_at = time.time() + int(body.get("expires_in", 60))
        self.tokens_fetched += 1

    # --- calls ----------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/api/v1/<path>``; on 401 fetch a new token and try once more."""
        for attempt in (0, 1):
            token = self.token(force=attempt == 1)
            response = self.session.request(
                method,
                self.base_url + API_PATH + path.lstrip("/"),
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
            )
            if response.status_code == 401 and attempt == 0:
                continue
            break
        if response.status_code == 429:
            raise RateLimited(429, _json(response), float(response.headers.get("Retry-After", "1")))
        if response.status_code >= 400:
            raise BastionError(response.status_code, _json(response))
        return response.json()

    def authorize(
        self,
        *,
        action: str,
        resource: tuple[str, str] | None = None,
        subject: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /authorize``: ``{allowed, reasons, decision_id}``. The subject defaults to this client."""
        return self.request("POST", "authorize", _check(action, resource, subject))

    def authorize_batch(self, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``POST /authorize/batch``: each check as ``authorize``'s keywords; the answers in order."""
        body = {"checks": [_check(c["action"], c.get("resource"), c.get("subject")) for c in checks]}
        return self.request("POST", "authorize/batch", body)["results"]

    def check_tool_call(
        self,
        *,
        tool_id: str,
        arguments: Any,
        datasets: list[str] | None = None,
        output: str | None = None,
        subject: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /tool-calls/check``: ``{allowed, reasons: [{code, message, path}], decision_id}``."""
        body: dict[str, Any] = {
            "subject": subject or {"type": "client"},
            "tool_id": str(tool_id),
            "arguments": arguments,
            "datasets": [str(d) for d in datasets or []],
        }
        if output is not None:
            body["output"] = output
        return self.request("POST", "tool-calls/check", body)

    def me(self) -> dict[str, Any]:
        """``GET /me``: this client, its tenant, role and permissions."""
        return self.request("GET", "me")


def _check(action: str, resource: tuple[str, str] | None, subject: dict[str, Any] | None) -> dict[str, Any]:
    check: dict[str, Any] = {"subject": subject or {"type": "client"}, "action": action}
    if resource is not None:
        check["resource"] = {"type": resource[0], "id": str(resource[1])}
    return check


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:200]}
    return body if isinstance(body, dict) else {"detail": str(body)[:200]}
