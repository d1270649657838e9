"""The decision endpoints answer from the same authorize() the console uses, for the client or a member."""

from __future__ import annotations

import pytest

from apps.access.decisions import authorize
from apps.access.models import DeniedDecision
from tests.api.conftest import Api


def test_authorize_for_the_calling_client_is_access_decision(api: Api, cast) -> None:
    body = {
        "subject": {"type": "client"},
        "action": "dataset.read",
        "resource": {"type": "dataset", "id": str(api.dataset.pk)},
    }
    answer = api.post("authorize", body).json()
    expected = authorize(api.created.client, "dataset.read", api.dataset, tenant=cast.acme)
    assert answer["allowed"] is expected.allowed is True
    assert answer["reasons"] == list(expected.reasons)
    assert answer["decision_id"]


def test_authorize_for_a_member_by_email_and_by_user_id(api: Api, cast) -> None:
    for subject in ({"type": "member", "email": "VIEWER@acme.example"}, {"type": "member", "user_id": cast.viewer.pk}):
        answer = api.post("authorize", {"subject": subject, "action": "dataset.write"}).json()
        assert answer["allowed"] is False
        assert answer["reasons"] == ["no role grants dataset.write"]
    answer = api.post(
        "authorize", {"subject": {"type": "member", "email": cast.owner.email}, "action": "dataset.write"}
    )
    assert answer.json()["allowed"] is True


def test_a_denial_is_in_the_decision_log_under_the_decision_id(api: Api, cast) -> None:
    answer = api.post(
        "authorize", {"subject": {"type": "member", "user_id": cast.viewer.pk}, "action": "billing.manage"}
    ).json()
    row = DeniedDecision.objects.for_tenant(cast.acme).get(action="billing.manage")
    assert row.request_id == answer["decision_id"]
    assert row.subject_id


def test_batch_answers_each_check_in_order(api: Api, cast) -> None:
    checks = [
        {
            "subject": {"type": "client"},
            "action": "dataset.read",
            "resource": {"type": "dataset", "id": str(api.dataset.pk)},
        },
        {"subject": {"type": "client"}, "action": "billing.manage"},
        {"subject": {"type": "member", "email": cast.owner.email}, "action": "billing.manage"},
    ]
    results = api.post("authorize/batch", {"checks": checks}).json()["results"]
    assert [r["allowed"] for r in results] == [True, False, True]
    assert len({r["decision_id"] for r in results}) == 3


def test_tool_call_check_lists_every_reason(api: Api) -> None:
    body = {
        "subject": {"type": "client"},
        "tool_id": str(api.tool.pk),
        "arguments": {"q": "see https://evil.example/x", "extra": 1},
        "datasets": [str(api.dataset.pk), "٣"],
        "output": "x" * 200,
    }
    answer = api.post("tool-calls/check", body).json()
    codes = [r["code"] for r in answer["reasons"]]
    assert answer["allowed"] is False
    assert {"dataset_not_found", "arguments_invalid", "output_too_large"} <= set(codes)
    assert any(code.startswith("egress") for code in codes), codes
    assert {"path": "datasets[1]"}.items() <= next(
        r for r in answer["reasons"] if r["code"] == "dataset_not_found"
    ).items()


def test_tool_call_check_allows_a_clean_call(api: Api) -> None:
    body = {"subject": {"type": "client"}, "tool_id": str(api.tool.pk), "arguments": {"q": "https://api.example.com/a"}}
    answer = api.post("tool-calls/check", body).json()
    assert answer == {"allowed": True, "reasons": [], "decision_id": answer["decision_id"]}


def test_me_names_the_client_tenant_role_and_permissions(api: Api, cast) -> None:
    answer = api.get("me").json()
    assert answer["client"] == {"client_id": api.created.client.client_id, "name": api.created.client.name}
    assert answer["tenant"] == {"id": cast.acme.pk, "slug": "acme", "name": "Acme Corp"}
    assert answer["role"] == "developer"
    assert "dataset.read" in answer["permissions"]
    assert "billing.manage" not in answer["permissions"]


@pytest.mark.django_db(transaction=True)
def test_a_denial_outside_a_transaction_is_committed_to_the_log(api: Api, cast) -> None:
    # The API's decisions run in autocommit: the log row commits on its own (without waiting for the WAL flush).
    answer = api.post("authorize", {"subject": {"type": "client"}, "action": "billing.manage"}).json()
    assert answer["allowed"] is False
    row = DeniedDecision.objects.for_tenant(cast.acme).get(action="billing.manage")
    assert row.request_id == answer["decision_id"]
    assert row.subject_type == "client"
