"""A JSON ``true`` is not the user id 1 (pydantic's lax mode would read it so)."""

from __future__ import annotations

from tests.api.conftest import Api


def test_a_boolean_user_id_is_refused(api: Api) -> None:
    response = api.post("authorize", {"subject": {"type": "member", "user_id": True}, "action": "tenant.view"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][-1] == "user_id"


def test_an_integral_float_user_id_is_an_integer_as_json_schema_says(api: Api, cast) -> None:
    body = {"subject": {"type": "member", "user_id": float(cast.member.pk)}, "action": "tenant.view"}
    assert api.post("authorize", body).json()["allowed"] is True
