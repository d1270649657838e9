"""Schemathesis over the whole runtime API, in-process against the WSGI app with a valid token.

Every operation of /api/v1/openapi.json is called with generated bodies (valid
and invalid): no answer may be a 5xx, and every answer must match the schema
(status documented, body and content type as declared). Bounded so the suite
stays quick; ``SCHEMATHESIS_MAX_EXAMPLES`` raises it for a deeper run.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.api.conftest import Api

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "40"))


@pytest.fixture
def api_schema(api: Api, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 1_000_000  # the run itself must not be rate limited
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_keeps_its_schema_and_never_answers_5xx(case, api: Api) -> None:
    response = case.call_and_validate(headers=api.headers)
    assert response.status_code < 500
