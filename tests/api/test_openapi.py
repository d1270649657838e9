"""The OpenAPI 3.1 document and the API reference page in the console."""

from __future__ import annotations

from django.test import Client

from apps.api.endpoint import ENDPOINTS


def test_the_document_is_openapi_3_1_with_every_endpoint(client: Client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/api/v1/oauth/token",
        "/api/v1/authorize",
        "/api/v1/authorize/batch",
        "/api/v1/tool-calls/check",
        "/api/v1/me",
        "/api/v1/usage",
        "/api/v1/guard",
        "/api/v1/budget/reservations",
        "/api/v1/budget/reservations/{reservation_id}/settle",
        "/api/v1/budget/reservations/{reservation_id}/release",
    }
    for path, methods in document["paths"].items():
        if path == "/api/v1/oauth/token":
            continue
        for operation in methods.values():
            assert operation["security"]
            assert {"401", "403", "429"} <= set(operation["responses"])
    assert document["components"]["schemas"]["AuthorizeRequest"]["additionalProperties"] is False


def test_the_token_endpoint_is_documented_form_encoded_with_rfc6749_errors(client: Client) -> None:
    document = client.get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/oauth/token"]["post"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == ["client_credentials"]
    assert {"200", "400", "401", "429"} <= set(operation["responses"])
    error = document["components"]["schemas"]["OAuthError"]
    assert {"invalid_client", "invalid_request", "unsupported_grant_type", "invalid_scope"} <= set(
        error["properties"]["error"]["enum"]
    )
    assert operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/OAuthError")
    assert document["components"]["securitySchemes"]["clientBasic"] == {
        "type": "http",
        "scheme": "basic",
        "description": document["components"]["securitySchemes"]["clientBasic"]["description"],
    }


def test_every_endpoint_declares_a_permission_and_a_scope() -> None:
    assert {(e.method, e.path) for e in ENDPOINTS} == {
        ("POST", "authorize"),
        ("POST", "authorize/batch"),
        ("POST", "tool-calls/check"),
        ("GET", "me"),
        ("POST", "usage"),
        ("POST", "guard"),
        ("POST", "budget/reservations"),
        ("POST", "budget/reservations/{reservation_id}/settle"),
        ("POST", "budget/reservations/{reservation_id}/release"),
    }
    assert all(e.permission and e.scope for e in ENDPOINTS)


def test_the_reference_page_renders_for_a_member_and_hides_from_outsiders(client_for, cast) -> None:
    response = client_for(cast.viewer).get("/t/acme/api/reference/")
    assert response.status_code == 200
    assert b"/api/v1/authorize/batch" in response.content
    assert "script-src" in response["Content-Security-Policy"]
    assert client_for(cast.outsider).get("/t/acme/api/reference/").status_code == 404
