"""The OpenAPI 3.1 document of /api/v1/, generated from the ``api_view`` registry and the pydantic models.

Built once per process (the endpoints and models are fixed at import) and
served as JSON. Schemas come from pydantic (JSON Schema 2020-12, which OpenAPI
3.1 uses as is); every error response is the ``Problem`` schema under
``application/problem+json``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from apps.api import usage_views, views  # noqa: F401  # registers the endpoints
from apps.api.endpoint import ENDPOINTS, MAX_BODY_BYTES
from apps.api.problems import PROBLEM_CONTENT_TYPE, TITLES
from apps.keys.tokens import API_SCOPES

BASE_PATH = "/api/v1/"
REF = "#/components/schemas/{model}"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "permission": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
RATE_HEADERS = {
    "RateLimit": {"schema": {"type": "string"}, "description": "draft-ietf-httpapi-ratelimit-headers: r=left, t=s"},
    "RateLimit-Policy": {"schema": {"type": "string"}, "description": "q=requests per w=60 seconds"},
}


OAUTH_ERRORS = (
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
)
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 6749 §5.2 error response (RFC 8707 adds invalid_target).",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "enum": list(OAUTH_ERRORS)},
        "error_description": {"type": "string"},
    },
}
TOKEN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 6749 §5.1 access token response; the token is a JWT (RFC 9068 profile).",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer", "minimum": 1, "maximum": 900},
        "scope": {"type": "string"},
    },
}


def _token_path() -> dict[str, Any]:
    """The keys app's token endpoint (a plain Django view, form-encoded): a hand-written path item."""

    def error(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model="OAuthError")}}},
        }
        if headers:
            body["headers"] = headers
        return body

    string = {"schema": {"type": "string"}}
    return {
        "post": {
            "operationId": "oauth_token",
            "summary": "Get an access token (OAuth 2.0 client credentials)",
            "description": "RFC 6749 §4.4. Authenticate with HTTP Basic (`client_secret_basic`, preferred) or "
            "with `client_id` and `client_secret` in the body (`client_secret_post`), never both. "
            "`audience` (or RFC 8707 `resource`) and `scope` are optional. Failed authentication is "
            "rate limited per client id and per IP.",
            "security": [{"clientBasic": []}, {}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["grant_type"],
                            "properties": {
                                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                                "client_id": {"type": "string"},
                                "client_secret": {"type": "string"},
                                "scope": {
                                    "type": "string",
                                    "description": "Space-separated, of " + ", ".join(API_SCOPES),
                                },
                                "audience": {"type": "string"},
                                "resource": {"type": "string", "format": "uri"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The access token",
                    "headers": {"Cache-Control": string},
                    "content": {"application/json": {"schema": {"$ref": REF.format(model="TokenResponse")}}},
                },
                "400": error("invalid_request, unsupported_grant_type, invalid_scope or invalid_target"),
                "401": error("invalid_client", **{"WWW-Authenticate": string}),
                "405": {"description": "Only POST", "headers": {"Allow": string}},
                "429": error("Too many failed authentications", **{"Retry-After": string}),
            },
        }
    }


def _models() -> list[tuple[type[BaseModel], str]]:
    seen: list[tuple[type[BaseModel], str]] = []
    for endpoint in ENDPOINTS:
        if endpoint.body is not None and (endpoint.body, "validation") not in seen:
            seen.append((endpoint.body, "validation"))
        if (endpoint.response, "serialization") not in seen:
            seen.append((endpoint.response, "serialization"))
    return seen


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": TITLES.get(status, "Error"),
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if status == 429:
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}}, **RATE_HEADERS}
    return response


@functools.cache
def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (the same dict for the life of the process: do not mutate)."""
    keyed, definitions = models_json_schema(_models(), ref_template=REF)
    schemas: dict[str, Any] = {
        **definitions.get("$defs", {}),
        "Problem": PROBLEM_SCHEMA,
        "OAuthError": OAUTH_ERROR_SCHEMA,
        "TokenResponse": TOKEN_SCHEMA,
    }
    paths: dict[str, Any] = {BASE_PATH + "oauth/token": _token_path()}
    for endpoint in ENDPOINTS:
        operation: dict[str, Any] = {
            "operationId": endpoint.operation_id,
            "summary": endpoint.summary,
            "description": endpoint.description
            + f"\n\nNeeds the token scope `{endpoint.scope}` and the permission `{endpoint.permission}`.",
            "security": [{"bearer": [endpoint.scope]}],
            "responses": {
                "200": {
                    "description": "OK",
                    "headers": RATE_HEADERS,
                    "content": {"application/json": {"schema": keyed[(endpoint.response, "serialization")]}},
                },
                **{str(status): _problem_response(status) for status in endpoint.problems},
            },
        }
        path_names = re.findall(r"{(\w+)}", endpoint.path)
        if path_names:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
                for name in path_names
            ]
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "description": f"JSON, at most {MAX_BODY_BYTES:,} bytes; unknown fields are refused.",
                "content": {"application/json": {"schema": keyed[(endpoint.body, "validation")]}},
            }
        paths.setdefault(BASE_PATH + endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bastion runtime API",
            "version": "1",
            "description": "Decisions and guardrail checks for a tenant's AI applications. "
            "Get a token with OAuth 2.0 client credentials at /api/v1/oauth/token; every error is "
            "RFC 9457 problem+json.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "client_secret_basic: the client id and secret, each form-urlencoded first.",
                },
                "bearer": {
                    "type": "oauth2",
                    "description": "A JWT access token from the token endpoint (client credentials).",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": BASE_PATH + "oauth/token",
                            "scopes": {scope: f"The {scope} endpoints" for scope in API_SCOPES},
                        }
                    },
                },
            },
        },
    }
