"""The API's own description: the OpenAPI document (public) and the reference page in the console."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.access.decorators import TenantRequest, public_view, tenant_view
from apps.api import openapi
from apps.core.decorators import cookieless_view


@public_view
def openapi_json(request: HttpRequest) -> HttpResponse:
    """``/api/v1/openapi.json``: describes the endpoints, never any tenant's data, so it needs no token."""
    response = HttpResponse(
        json.dumps(openapi.document(), ensure_ascii=False, indent=1), content_type="application/json"
    )
    response["Cache-Control"] = "public, max-age=300"
    return response


cookieless_view(openapi_json)


def _operations() -> list[dict[str, Any]]:
    document = openapi.document()
    schemas = document["components"]["schemas"]
    rows = []
    for route, methods in document["paths"].items():
        for method, operation in methods.items():
            content = operation.get("requestBody", {}).get("content", {})  # JSON, or the token endpoint's form
            body = next(iter(content.values()), {}).get("schema")
            answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
            rows.append(
                {
                    "method": method.upper(),
                    "path": route,
                    "summary": operation["summary"],
                    "description": operation["description"],
                    "body": json.dumps(_expand(body, schemas), indent=2) if body else "",
                    "response": json.dumps(_expand(answer, schemas), indent=2),
                    "problems": sorted(code for code in operation["responses"] if code != "200"),
                }
            )
    return rows


def _expand(schema: Any, schemas: dict[str, Any], depth: int = 0) -> Any:
    """The schema with ``$ref``s written out (for reading on the page; the models are shallow)."""
    if depth > 8:
        return schema
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _expand(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas, depth + 1)
        return {key: _expand(value, schemas, depth + 1) for key, value in schema.items() if key != "title"}
    if isinstance(schema, list):
        return [_expand(item, schemas, depth + 1) for item in schema]
    return schema


@tenant_view("tenant.view")
def reference(request: TenantRequest) -> HttpResponse:
    """The API reference in the console: every endpoint with its body, answer and problems, rendered server-side."""
    return render(request, "api/reference.html", {"operations": _operations(), "tenant": request.tenant})
