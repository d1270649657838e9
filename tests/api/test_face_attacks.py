"""The runtime API face from the attacker's side: bodies, content types, fields, ids, tokens, other tenants.

Every refusal is an RFC 9457 problem document (never HTML, never a 500), and
another tenant's object is answered exactly like one that does not exist.
"""

from __future__ import annotations

import json

import pytest

from apps.access.models import DeniedDecision
from apps.access.services import role_create
from apps.api.endpoint import MAX_BODY_BYTES
from tests.api.conftest import Api
from tests.keys.helpers import bearer, issue_token, make_client

PROBLEM = "application/problem+json"


def _check(api: Api, kind: str = "dataset", ident: str | None = None) -> dict:
    return {
        "subject": {"type": "client"},
        "action": "dataset.read",
        "resource": {"type": kind, "id": ident if ident is not None else str(api.dataset.pk)},
    }


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    assert body["detail"]
    return body


# --- tokens -----------------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(api: Api) -> None:
    response = api.http.post("/api/v1/authorize", _check(api), content_type="application/json")
    _problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("header", ["Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "bearer  "])
def test_a_bad_token_is_401_invalid_token(api: Api, header: str) -> None:
    response = api.http.post(
        "/api/v1/authorize", _check(api), content_type="application/json", HTTP_AUTHORIZATION=header
    )
    _problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer ")


def test_a_disabled_clients_token_is_refused_at_once(api: Api, django_capture_on_commit_callbacks) -> None:
    from apps.keys.services import apiclient_disable

    assert api.post("authorize", _check(api)).status_code == 200  # warm: verified and cached
    with django_capture_on_commit_callbacks(execute=True):
        apiclient_disable(client=api.created.client)
    response = api.post("authorize", _check(api))
    _problem(response, 401)
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_a_token_without_the_scope_is_403_insufficient_scope(api: Api) -> None:
    token = issue_token(api.created, scope="me")
    response = api.http.post("/api/v1/authorize", _check(api), content_type="application/json", **bearer(token))
    _problem(response, 403)
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert api.http.get("/api/v1/me", **bearer(token)).status_code == 200


def test_a_client_whose_role_lacks_the_endpoint_permission_is_403(api: Api, cast) -> None:
    bare_role = role_create(tenant=cast.acme, key="nothing", name="Nothing", permissions=["dataset.read"])
    created = make_client(tenant=cast.acme, role=bare_role)
    response = api.http.post(
        "/api/v1/authorize", _check(api), content_type="application/json", **bearer(issue_token(created))
    )
    assert _problem(response, 403)["permission"] == "tenant.view"
    assert DeniedDecision.objects.filter(tenant=cast.acme, action="tenant.view").exists()


# --- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", "", "application/jsonx"]
)
def test_a_body_that_is_not_json_by_type_is_415(api: Api, content_type: str) -> None:
    response = api.http.generic(
        "POST", "/api/v1/authorize", json.dumps(_check(api)), content_type=content_type, **api.headers
    )
    _problem(response, 415)


def test_json_with_a_charset_parameter_is_fine(api: Api) -> None:
    response = api.http.generic(
        "POST",
        "/api/v1/authorize",
        json.dumps(_check(api)).encode(),
        content_type="application/json; charset=utf-8",
        **api.headers,
    )
    assert response.status_code == 200


def test_a_body_over_1_mib_is_413_without_being_parsed(api: Api) -> None:
    padding = "x" * MAX_BODY_BYTES
    body = json.dumps({**_check(api), "padding": padding})
    response = api.http.generic("POST", "/api/v1/authorize", body, content_type="application/json", **api.headers)
    _problem(response, 413)


def test_a_lying_content_length_cannot_smuggle_a_larger_body(api: Api) -> None:
    body = json.dumps({**_check(api), "padding": "x" * (MAX_BODY_BYTES + 10)}).encode()
    response = api.http.generic(
        "POST", "/api/v1/authorize", body, content_type="application/json", CONTENT_LENGTH="100", **api.headers
    )
    # Django's test client sends the whole body; the read is capped whatever the header claimed.
    assert response.status_code in {400, 413}
    assert response["Content-Type"] == PROBLEM


def test_an_empty_body_is_refused(api: Api) -> None:
    # Without a body there is no content type either (so 415); with one, not JSON (400).
    response = api.http.generic("POST", "/api/v1/authorize", b"", content_type="application/json", **api.headers)
    assert response.status_code in {400, 415}
    assert response["Content-Type"] == PROBLEM


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"subject": ',
        b"not json",
        b"\xff\xfe{}",
        b'{"a": NaN}',
        b"[1, 2",
        b'{"subject": {"type": "client"},}',
    ],
)
def test_malformed_json_is_400(api: Api, raw: bytes) -> None:
    response = api.http.generic("POST", "/api/v1/authorize", raw, content_type="application/json", **api.headers)
    body = _problem(response, 400) if response.status_code == 400 else _problem(response, 422)
    assert "Traceback" not in json.dumps(body)


@pytest.mark.parametrize(
    "body",
    [
        {"subject": {"type": "client"}, "action": "dataset.read", "tenant": "globex"},  # a tenant from the body
        {"subject": {"type": "client", "tenant_id": 2}, "action": "dataset.read"},
        {"subject": {"type": "client"}, "action": "dataset.read", "resource": {"type": "dataset", "id": "1", "x": 1}},
        {"checks": []},
    ],
)
def test_unknown_fields_are_refused_with_422(api: Api, body: dict) -> None:
    problem = _problem(api.post("authorize", body), 422)
    assert problem["errors"]
    assert all(set(error) == {"loc", "msg", "type"} for error in problem["errors"])


def test_a_422_does_not_echo_the_values_sent(api: Api) -> None:
    secret = "sk-live-0123456789abcdef"
    problem = _problem(api.post("authorize", {"subject": {"type": "client"}, "action": secret}), 422)
    assert secret not in json.dumps(problem)


def test_wrong_method_is_405_with_allow(api: Api) -> None:
    response = api.get("authorize")
    _problem(response, 405)
    assert response["Allow"] == "POST"


def test_an_unknown_path_is_a_404_problem_not_the_console_page(api: Api) -> None:
    _problem(api.get("nothing-here"), 404)
    _problem(api.http.get("/api/v1/authorize/../../etc/passwd"), 404)


def test_batch_over_100_checks_is_422(api: Api) -> None:
    _problem(api.post("authorize/batch", {"checks": [_check(api)] * 101}), 422)
    assert api.post("authorize/batch", {"checks": [_check(api)] * 100}).status_code == 200


# --- ids and other tenants ----------------------------------------------------------------------

UNICODE_IDS = ["٣", "１", "🙂", "1 OR 1=1", "-1", "0", "9" * 40, "١٢", "Ⅻ", "\u202e1", "1.0", "0x10"]


@pytest.mark.parametrize("ident", UNICODE_IDS)
def test_unicode_and_odd_ids_are_a_clean_deny(api: Api, ident: str) -> None:
    response = api.post("authorize", _check(api, ident=ident))
    assert response.status_code == 200, response.content
    assert response.json()["allowed"] is False
    assert response.json()["reasons"] == ["no such dataset in this tenant"]


def test_an_id_with_a_nul_is_422_naming_it(api: Api) -> None:
    # PostgreSQL stores no NUL: refused for every string of every body (tests/api/test_hostile_text.py).
    response = _problem(api.post("authorize", _check(api, ident="1\u0000")), 422)
    assert response["errors"][0]["loc"] == ["resource", "id"]


def test_an_id_over_64_characters_is_422(api: Api) -> None:
    _problem(api.post("authorize", _check(api, ident="1" * 65)), 422)


def _without_id(body: dict) -> dict:
    return {key: value for key, value in body.items() if key != "decision_id"}


def test_another_tenants_dataset_is_denied_exactly_like_a_missing_one(api: Api) -> None:
    foreign = api.post("authorize", _check(api, ident=str(api.globex_dataset.pk))).json()
    missing = api.post("authorize", _check(api, ident="987654321")).json()
    assert foreign["allowed"] is False
    assert _without_id(foreign) == _without_id(missing)
    own = api.post("authorize", _check(api)).json()
    assert own["allowed"] is True  # the client's developer role reads internal datasets


def test_another_tenants_tool_is_denied_exactly_like_a_missing_one(api: Api) -> None:
    def ask(ident: str) -> dict:
        body = {"subject": {"type": "client"}, "action": "tool.execute", "resource": {"type": "tool", "id": ident}}
        return _without_id(api.post("authorize", body).json())

    assert ask(str(api.globex_tool.pk)) == ask("987654321")
    assert ask(str(api.globex_tool.pk))["allowed"] is False


def test_another_tenants_member_is_not_a_subject(api: Api, cast) -> None:
    def ask(subject: dict) -> dict:
        return _without_id(api.post("authorize", {"subject": subject, "action": "tenant.view"}).json())

    foreign = ask({"type": "member", "email": cast.globex_owner.email})
    assert foreign == ask({"type": "member", "email": "nobody@nowhere.example"})
    assert foreign == ask({"type": "member", "user_id": cast.globex_owner.pk})
    assert foreign == {"allowed": False, "reasons": ["no such member in this tenant"]}
    assert ask({"type": "member", "email": cast.viewer.email})["allowed"] is True


def test_tool_call_check_with_another_tenants_tool_and_dataset(api: Api) -> None:
    body = {
        "subject": {"type": "client"},
        "tool_id": str(api.globex_tool.pk),
        "arguments": {},
        "datasets": [str(api.globex_dataset.pk)],
    }
    foreign = api.post("tool-calls/check", body).json()
    missing = api.post("tool-calls/check", {**body, "tool_id": "987654321", "datasets": ["987654321"]}).json()
    assert foreign["allowed"] is False
    assert _without_id(foreign) == _without_id(missing)
    assert [r["code"] for r in foreign["reasons"]] == ["tool_not_found", "dataset_not_found"]


def test_the_tenant_comes_from_the_token_not_from_headers(api: Api, cast) -> None:
    response = api.post("authorize", _check(api, ident=str(api.globex_dataset.pk)), HTTP_X_TENANT="globex")
    assert response.status_code in {200, 400}
    if response.status_code == 200:
        assert response.json()["allowed"] is False


def test_api_answers_keep_the_security_headers_and_set_no_cookie(api: Api) -> None:
    for response in (api.post("authorize", _check(api)), api.get("nothing-here"), api.http.get("/api/v1/me")):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" in response
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Request-ID"]
        assert not response.cookies
