"""The "Try a tool call" page: permission contract, narrowed choices, verdicts, htmx and no-JS."""

from __future__ import annotations

import json

import pytest

from apps.audit.models import AuditEvent
from tests.contract import PageContract, PermissionContract, Ref

pytestmark = pytest.mark.django_db

URL = "/t/acme/guardrails/try/"
GOOD = json.dumps({"query": {"text": "cats"}, "url": "https://api.example.com/search"})


class TestTryPageContract(PermissionContract):
    """Anonymous → sign-in, outsiders → 404, no tool.execute (the viewer) → 403 for GET and POST, holders → 200."""

    app_namespace = "guardrails"
    contracts = (
        PageContract("guardrails:try", "tool.execute"),
        PageContract("guardrails:try", "tool.execute", method="post", data={"tool": Ref("tool"), "arguments": GOOD}),
    )

    @pytest.fixture
    def contract_world(self, rows):
        return rows


def test_choices_are_narrowed_to_the_tenant(cast, rows, client_for) -> None:
    body = client_for(cast.owner).get(URL).content.decode()
    assert "web_search" in body
    assert "customers" in body
    assert "globex" not in body


def test_a_foreign_tool_or_dataset_id_is_not_a_valid_choice(cast, rows, client_for) -> None:
    client = client_for(cast.owner)
    response = client.post(URL, {"tool": rows.foreign_tool.pk, "arguments": GOOD})
    assert "Select a valid choice" in response.content.decode()
    assert response.context["verdict"] is None
    response = client.post(URL, {"tool": rows.tool.pk, "datasets": [rows.foreign_dataset.pk], "arguments": GOOD})
    assert "Select a valid choice" in response.content.decode()
    assert response.context["verdict"] is None


def test_an_allowed_call_says_so(cast, rows, client_for) -> None:
    response = client_for(cast.member).post(
        URL, {"tool": rows.tool.pk, "datasets": [rows.dataset.pk], "arguments": GOOD}
    )
    assert response.status_code == 200
    assert response.context["verdict"].allowed
    assert "This call passes every guardrail" in response.content.decode()


def test_a_denied_call_shows_every_reason_and_is_audited(cast, rows, client_for) -> None:
    arguments = json.dumps({"query": {"text": 1}, "url": "https://api.example.com@evil.com/"})
    response = client_for(cast.member).post(URL, {"tool": rows.tool.pk, "arguments": arguments})
    body = response.content.decode()
    assert "Denied" in body
    assert "<code>$.query.text</code>" in body
    assert "egress_userinfo" in body
    assert "host evil.com is not in the tool" in body
    (event,) = AuditEvent.objects.for_tenant(cast.acme).filter(action="guardrail.tool_call")
    assert event.actor_id == str(cast.member.pk)
    assert event.request_id == response["X-Request-ID"]


def test_htmx_gets_the_panel_only(cast, rows, client_for) -> None:
    response = client_for(cast.member).post(URL, {"tool": rows.tool.pk, "arguments": "{}"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="try-panel">')
    assert "<html" not in body
    assert "&#x27;query&#x27; is a required property" in body


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('{"query": ', "Not valid JSON: Expecting value (line 1, column 10)."),
        ('{"n": NaN}', "NaN is not allowed"),
        ("x" * (1024 * 1024 + 1), "This is 1,048,577 bytes; the limit is 1,048,576 bytes."),
    ],
)
def test_argument_text_errors_are_plain(cast, rows, client_for, arguments, message) -> None:
    response = client_for(cast.member).post(URL, {"tool": rows.tool.pk, "arguments": arguments})
    assert message in response.content.decode()
    assert response.context["verdict"] is None
    assert not AuditEvent.objects.for_tenant(cast.acme).filter(action="guardrail.tool_call").exists()


def test_oversized_but_parseable_arguments_reach_the_cap_check(cast, rows, client_for) -> None:
    arguments = json.dumps({"query": {"text": "x" * 70_000}})
    response = client_for(cast.member).post(URL, {"tool": rows.tool.pk, "arguments": arguments})
    assert response.context["verdict"].codes == ["arguments_too_large"]


def test_the_tool_can_be_preselected_from_its_page(cast, rows, client_for) -> None:
    body = client_for(cast.member).get(f"{URL}?tool={rows.tool.pk}").content.decode()
    assert f'<option value="{rows.tool.pk}" selected>' in body
    body = client_for(cast.member).get(f"{URL}?tool={rows.foreign_tool.pk}").content.decode()
    assert "selected>globex" not in body
    assert "globex_tool" not in body
