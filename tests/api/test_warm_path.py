"""The warm path of /authorize makes no database query (the issue's performance requirement, proved)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.conftest import Api


def test_a_warm_authorize_makes_no_query(api: Api, cast) -> None:
    checks = [
        {
            "subject": {"type": "client"},
            "action": "dataset.read",
            "resource": {"type": "dataset", "id": str(api.dataset.pk)},
        },
        {
            "subject": {"type": "member", "email": cast.member.email},
            "action": "tool.execute",
            "resource": {"type": "tool", "id": str(api.tool.pk)},
        },
        {"subject": {"type": "client"}, "action": "tenant.view"},
    ]
    for body in checks:  # cold: token verified, rows and permission sets loaded
        assert api.post("authorize", body).json()["allowed"] is True
    for body in checks:
        with CaptureQueriesContext(connection) as queries:
            response = api.post("authorize", body)
        assert response.json()["allowed"] is True
        assert len(queries) == 0, [q["sql"] for q in queries]
