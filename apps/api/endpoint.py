"""``api_view``: how an endpoint of the runtime API declares what it needs, and the steps every call takes.

An endpoint is a function ``(call, body) -> response model`` declared with
``api_view(permission, method=…, path=…, body=…, response=…)``. The wrapper
runs the same steps for every endpoint, in this order, each answering with an
RFC 9457 problem (``apps.api.problems``) when it refuses:

1. method (405 with ``Allow``);
2. bearer token (401 with ``WWW-Authenticate: Bearer …``), verified by
   ``apps.keys.tokens.verify_access_token`` for the API audience; the tenant
   and the calling client come from the token only;
3. rate limit per client (429 with ``Retry-After``; every answer carries the
   ``RateLimit`` headers) and the use counted (``apps.api.meter``);
4. the declared permission for the calling client (403), from ``authorize()``;
5. the body: JSON only (415), at most ``MAX_BODY_BYTES`` (413), well-formed
   (400), matching the pydantic model with unknown fields refused (422).

The registry (``ENDPOINTS``) is what the OpenAPI document is built from, and
the wrapper carries ``required_permission`` for the architecture test's URL
walk. Nothing here decides access itself: step 4 asks ``access``.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ValidationError

from apps.access import permsets
from apps.access.decisions import authorize
from apps.access.permissions import require_known
from apps.api import limits, meter
from apps.api.problems import ApiProblem, problem_response
from apps.core import context
from apps.core.decorators import cookieless_view
from apps.keys import conf as keys_conf
from apps.keys.models import ApiClient
from apps.keys.tokens import API_SCOPES, TokenContext, TokenError, verify_access_token
from apps.tenants.models import Tenant
from apps.tenants.selectors import tenant_get

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: a batch of 100 checks is a few KiB; anything near this is abuse
MAX_ERRORS = 20  # a 422 lists at most this many problems (a huge body must not make a huge answer)
JSON_TYPES = frozenset({"application/json"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bastion", error="invalid_token"'}


@dataclass(slots=True)
class ApiCall:
    """One authenticated call: the request, the verified token and the calling client as an access subject."""

    request: HttpRequest
    token: TokenContext
    client: ApiClient  # the calling client: also the access subject for its own questions
    tenant: Tenant  # the token's tenant (a row read after the tenant's last published access change)


Handler = Callable[[ApiCall, Any], BaseModel]
View = Callable[..., HttpResponse]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What the OpenAPI document says about one operation."""

    operation_id: str
    method: str
    path: str  # relative to /api/v1/
    permission: str
    scope: str
    summary: str
    description: str
    body: type[BaseModel] | None
    response: type[BaseModel]
    problems: tuple[int, ...]


ENDPOINTS: list[Endpoint] = []
COMMON_PROBLEMS = (401, 403, 405, 429)
BODY_PROBLEMS = (400, 413, 415, 422)


def _bearer(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(
            401,
            "unauthorized",
            "A bearer token is required: Authorization: Bearer <access token from /api/v1/oauth/token>.",
            headers={"WWW-Authenticate": 'Bearer realm="bastion"'},
        )
    return token.strip()


def _authenticate(request: HttpRequest) -> TokenContext:
    try:
        return verify_access_token(_bearer(request), audience=keys_conf.default_audience())
    except TokenError as error:
        code = error.code if error.code in {"invalid_token", "invalid_request"} else "invalid_token"
        # RFC 6750 §3: the error code in the challenge; the description is ours, never the token.
        challenge = f'Bearer realm="bastion", error="{code}", error_description="The access token is not valid."'
        raise ApiProblem(
            401, "invalid-token", "The access token is not valid.", headers={"WWW-Authenticate": challenge}
        ) from None


_callers: dict[tuple[int, int, int, int], tuple[ApiClient, Tenant]] = {}
MAX_CALLERS = 10_000


def _caller(token: TokenContext) -> tuple[ApiClient, Tenant]:
    """The calling client as an access subject, with a tenant row as fresh as the tenant's access version.

    ``keys`` keeps the verified client (and the tenant row it was loaded with) for as long as the
    client does not change, and ``access`` memoises a permission set on the subject object. A
    decision read from those would not see a role or grant change. So each process keeps a copy
    of the client, without keys' memo and with the tenant row read afresh, per *published access
    version* (``token.access_version``, read by keys in the same shared-cache read as the client
    state): a committed change publishes a new version, and the very next call here misses, reads
    the tenant row (one query) and decides with the new permission set. Warm: no query.
    """
    key = (token.client.pk, id(token.client), token.tenant.id, token.access_version)
    found = _callers.get(key)
    if found is not None:
        return found
    tenant = tenant_get(slug=token.tenant.slug)
    if tenant is None or tenant.id != token.tenant.id:
        raise ApiProblem(401, "invalid-token", "The access token is not valid.", headers=_CHALLENGE)
    client = copy.copy(token.client)  # Django copies _state and its field cache with the instance
    permsets.forget(client)  # type: ignore[arg-type]  # drops the memo of any subject
    client.tenant = tenant
    if len(_callers) >= MAX_CALLERS:  # old versions are never asked for again: start over
        _callers.clear()
    _callers[key] = (client, tenant)
    return client, tenant


def forget_callers() -> None:
    """Drop this process's callers (tests)."""
    _callers.clear()


def _nul_paths(value: Any, path: list[str], found: list[list[str]]) -> None:
    if len(found) >= MAX_ERRORS:
        return
    if isinstance(value, str):
        if "\x00" in value:
            found.append(path[:10])
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                found.append([*path, key.replace("\x00", "\\u0000")][:10])
            _nul_paths(item, [*path, str(key)], found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _nul_paths(item, [*path, str(index)], found)


def _refuse_nul(raw: bytes) -> None:
    """422 naming each string that holds a NUL (U+0000): PostgreSQL stores no NUL in text or jsonb.

    Checked on the whole body, before the model: a NUL in any field (an e-mail, an id,
    tool arguments that end up in the decision log) would otherwise fail in the database.
    """
    try:
        parsed = json.loads(raw)
    except ValueError:
        return  # malformed: the model's parser answers 400
    found: list[list[str]] = []
    _nul_paths(parsed, [], found)
    if found:
        listed = [
            {"loc": loc, "msg": "NUL characters (U+0000) are not allowed.", "type": "string_nul"} for loc in found
        ]
        raise ApiProblem(422, "validation-failed", f"The body has {len(found)} problem(s).", extra={"errors": listed})


def _parse_body(request: HttpRequest, model: type[BaseModel]) -> BaseModel:
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise ApiProblem(415, "unsupported-media-type", "Send the body as application/json.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        raise ApiProblem(413, "content-too-large", f"The body is over {MAX_BODY_BYTES:,} bytes.")
    # Read at most one byte past the cap, whatever Content-Length claimed (chunked bodies have none).
    raw = request.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiProblem(413, "content-too-large", f"The body is over {MAX_BODY_BYTES:,} bytes.")
    if b"\\u0000" in raw:  # the only way a NUL gets past the JSON parser (a raw NUL byte is malformed JSON)
        _refuse_nul(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise ApiProblem(400, "malformed-json", "The body is not well-formed JSON (UTF-8).") from None
        listed = [
            {"loc": [str(part) for part in e["loc"]][:10], "msg": str(e["msg"])[:200], "type": str(e["type"])}
            for e in errors[:MAX_ERRORS]
        ]
        raise ApiProblem(
            422, "validation-failed", f"The body has {len(errors)} problem(s).", extra={"errors": listed}
        ) from None


def api_view(
    permission: str,
    *,
    method: str,
    path: str,
    scope: str,
    response: type[BaseModel],
    body: type[BaseModel] | None = None,
    summary: str,
    problems: tuple[int, ...] = (),
) -> Callable[[Handler], View]:
    """Declare an endpoint: the permission the calling client needs, the token scope, method, path and models."""
    require_known(permission)
    if scope not in API_SCOPES:
        raise ValueError(f"unknown token scope {scope!r}: add it to apps.keys.tokens.API_SCOPES")
    method = method.upper()

    def decorate(handler: Handler) -> View:
        listed = (*COMMON_PROBLEMS, *(BODY_PROBLEMS if body is not None else ()), *problems)
        ENDPOINTS.append(
            Endpoint(
                operation_id=handler.__name__,
                method=method,
                path=path,
                permission=permission,
                scope=scope,
                summary=summary,
                description=inspect.cleandoc(handler.__doc__ or ""),
                body=body,
                response=response,
                problems=tuple(sorted(set(listed))),
            )
        )

        @csrf_exempt
        @functools.wraps(handler)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            outcome: meter.Outcome | None = None
            try:
                if request.method != method:
                    raise ApiProblem(405, "method-not-allowed", f"Use {method} here.", headers={"Allow": method})
                token = _authenticate(request)
                context.update(tenant_id=token.tenant.id, tenant_slug=token.tenant.slug)
                outcome = meter.take(
                    client_id=token.client_id,
                    audience=keys_conf.default_audience(),
                    limit=limits.limit_for(token),
                    ip=context.current().ip or "",
                    user_agent=context.current().user_agent,
                )
                if not outcome.allowed:
                    raise ApiProblem(
                        429,
                        "rate-limited",
                        f"Over this client's limit of {outcome.limit.per_minute} requests a minute.",
                    )
                if scope not in token.scopes:
                    raise ApiProblem(
                        403,
                        "insufficient-scope",
                        f"The access token lacks the scope {scope!r}.",
                        headers={
                            "WWW-Authenticate": f'Bearer realm="bastion", error="insufficient_scope", scope="{scope}"'
                        },
                    )
                # The client's own right to use this endpoint: asked of access (a refusal is in the decision log).
                client, tenant = _caller(token)
                decision = authorize(client, permission, tenant=tenant)
                if not decision.allowed:
                    raise ApiProblem(
                        403,
                        "forbidden",
                        # A suspended tenant (e.g. for non-payment) refuses writes whatever the role grants: say so.
                        "The tenant is suspended (read-only): this call is refused until it is reactivated."
                        if tenant.is_suspended
                        else f"This client's role does not grant {permission}.",
                        extra={"permission": permission, "reasons": list(decision.reasons)},
                    )
                parsed = _parse_body(request, body) if body is not None else None
                result = handler(ApiCall(request, token, client, tenant), parsed)
                answer = HttpResponse(result.model_dump_json(), content_type="application/json")
            except ApiProblem as refused:
                answer = problem_response(refused)
            except Exception:  # the face's promise: a problem document, never a stack trace
                logger.exception("api endpoint %s failed", handler.__name__)
                answer = problem_response(ApiProblem(500, "internal-error", "Something went wrong on our side."))
            if outcome is not None:
                for name, value in outcome.headers().items():
                    answer[name] = value
            answer["Cache-Control"] = "no-store"
            return answer

        view.required_permission = permission  # type: ignore[attr-defined]
        return cookieless_view(view)  # apps.core.middleware.ShortcutMiddleware takes the short way

    return decorate
