"""Structured logs: one JSON object per line, with request id, tenant and user, secrets masked."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import path

from apps.access.decorators import public_view
from apps.core import context
from apps.core.logging import MaskingJsonFormatter, RequestContextFilter

pytestmark = pytest.mark.django_db

SECRET = "abcDEF123456ghiJKL789"
view_logger = logging.getLogger("tests.core.view")


@public_view
def _logging_view(request: HttpRequest) -> HttpResponse:
    view_logger.warning("calling upstream with Bearer %s", SECRET, extra={"api_key": SECRET})
    return HttpResponse("ok")


# This module doubles as a URL conf for the tests that need a view that logs.
urlpatterns = [path("log-something", _logging_view)]


@pytest.fixture
def json_lines():
    """Capture what the configured root handler would print, at INFO, as parsed JSON objects."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingJsonFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        handler.flush()
        raw = [line for line in stream.getvalue().splitlines() if line.strip()]
        return [json.loads(line) for line in raw]  # every line must be JSON

    yield lines
    root.removeHandler(handler)
    root.setLevel(old_level)


def _access_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "bastion.access"]


def test_configured_handler_is_json_with_context(settings):
    """The settings' root handler uses the masking JSON formatter and the context filter."""
    handler = settings.LOGGING["handlers"]["console"]
    assert handler["formatter"] == "json"
    assert "context" in handler["filters"]
    root_handlers = logging.getLogger().handlers
    assert any(isinstance(h.formatter, MaskingJsonFormatter) for h in root_handlers)
    # Django's own plain-text console handler is gone; django.* lines reach root as JSON.
    assert logging.getLogger("django").handlers == []


def test_request_produces_access_line_with_request_id(client, json_lines):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    request_id = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)

    (line,) = _access_lines(json_lines())
    assert line["request_id"] == request_id
    assert line["method"] == "GET"
    assert line["path"] == "/accounts/login/"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "INFO"
    assert {"time", "message", "tenant", "user_id"} <= line.keys()


def test_access_line_carries_tenant_and_user(cast, client_for, json_lines):
    response = client_for(cast.member).get("/t/acme/")
    assert response.status_code == 200
    (line,) = _access_lines(json_lines())
    assert line["tenant"] == "acme"
    assert line["user_id"] == cast.member.pk
    assert line["request_id"] == response["X-Request-ID"]


def test_query_string_is_not_logged(client, json_lines):
    client.get("/accounts/login/?token=supersecretvalue123")
    text = json.dumps(json_lines())
    assert "supersecretvalue123" not in text


def test_health_probes_log_at_debug_only(client, json_lines):
    client.get("/healthz")
    assert _access_lines(json_lines()) == []


def test_wellformed_incoming_request_id_is_kept(client, json_lines):
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID="edge-proxy-1234abcd")
    assert response["X-Request-ID"] == "edge-proxy-1234abcd"
    assert _access_lines(json_lines())[0]["request_id"] == "edge-proxy-1234abcd"


@pytest.mark.parametrize(
    "incoming",
    ["short", "has spaces in it", "x" * 65, "inject\nfake log line", '{"level": "ERROR"}', "ünïcode-1234567"],
)
def test_malformed_incoming_request_id_is_replaced(client, json_lines, incoming):
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] != incoming
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert incoming not in json.dumps(json_lines())


@override_settings(ROOT_URLCONF=__name__)
def test_secrets_in_messages_and_extra_fields_are_masked(client, json_lines):
    response = client.get("/log-something")
    assert response.status_code == 200
    lines = json_lines()
    (line,) = [line for line in lines if line["logger"] == "tests.core.view"]
    assert SECRET not in json.dumps(lines)
    assert line["message"] == "calling upstream with Bearer [MASKED]"
    assert line["api_key"] == "[MASKED]"
    assert line["request_id"] == response["X-Request-ID"]


def test_exception_tracebacks_are_masked(json_lines):
    try:
        raise ValueError(f"upstream refused token=Bearer {SECRET}")
    except ValueError:
        logging.getLogger("tests.core").exception("call failed")
    (line,) = json_lines()
    assert SECRET not in json.dumps(line)
    assert "ValueError" in line["exc_info"]


def test_log_outside_a_request_has_empty_context(json_lines):
    logging.getLogger("tests.core").warning("background")
    (line,) = json_lines()
    assert line["request_id"] == ""
    assert line["tenant"] == ""
    assert line["user_id"] is None


def test_task_context_binding_and_release():
    """The Celery signal handlers bind a task's request id and restore the previous context."""
    from types import SimpleNamespace

    from config import celery as celery_module

    task = SimpleNamespace(request=SimpleNamespace(is_eager=False, bastion_request_id="web-req-12345678"))
    with context.bind(request_id="outer-request-id"):
        celery_module._bind_task_context(task_id="task-1", task=task)
        assert context.current().request_id == "web-req-12345678"
        celery_module._unbind_task_context(task_id="task-1")
        assert context.current().request_id == "outer-request-id"

    eager = SimpleNamespace(request=SimpleNamespace(is_eager=True))
    with context.bind(request_id="caller-request"):
        celery_module._bind_task_context(task_id="task-2", task=eager)
        assert context.current().request_id == "caller-request"
        celery_module._unbind_task_context(task_id="task-2")


def test_publish_adds_request_id_header():
    from config import celery as celery_module

    headers: dict = {}
    with context.bind(request_id="req-for-header-1"):
        celery_module._add_request_id_header(headers=headers)
    assert headers[celery_module.REQUEST_ID_HEADER] == "req-for-header-1"
