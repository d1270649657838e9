"""Fraud screening: each signal raises exactly one case per client (while open) and none under its minimum."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from apps.access.services import builtin_roles_seed
from apps.alerts.models import FraudCase, Signal
from apps.alerts.services import fraud, rules
from apps.audit.models import AuditEvent
from apps.catalog.models import Tool
from apps.keys.models import ApiClient
from apps.tenants.models import Membership
from tests.alerts.helpers import hours_ago, usage
from tests.keys.helpers import bearer, issue_token, make_client, reset_caches

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(cast):
    return make_client(tenant=cast.acme, builtin_role="developer", name="chatbot")


def _cases(tenant, signal=None):
    qs = FraudCase.objects.for_tenant(tenant)
    return qs.filter(signal=signal) if signal else qs


def _screen(cast):
    return fraud.tenant_screen(tenant_id=cast.acme.pk)


def _policy(cast, **values):
    policy = fraud.policy_for(tenant=cast.acme)
    return rules.fraud_policy_update(policy=policy, data=values, actor=None)


def test_long_contexts(cast, app) -> None:
    _policy(cast, long_context_tokens=50_000, long_context_min_events=3)
    usage(cast.acme, app.client, context_tokens=60_000, n=2)
    usage(cast.acme, app.client, context_tokens=40_000, n=10)  # long-ish, below the limit
    _screen(cast)
    assert not _cases(cast.acme).exists()
    usage(cast.acme, app.client, input_tokens=70_000, n=1)  # no context reported: the input counts
    _screen(cast)
    _screen(cast)
    case = _cases(cast.acme, Signal.LONG_CONTEXT).get()
    assert case.occurrences == 2
    assert case.evidence["largest_context_tokens"] == 70_000
    assert case.client_id == app.client.pk


def test_retry_storm_counts_one_minute(cast, app) -> None:
    _policy(cast, retry_storm_repeats=10)
    now = timezone.now()
    usage(cast.acme, app.client, prompt_hash="abc", at=now - timedelta(seconds=1), n=9)
    usage(cast.acme, app.client, prompt_hash="abc", at=now - timedelta(seconds=90), n=9)  # over a minute before
    usage(cast.acme, app.client, prompt_hash="xyz", at=now - timedelta(seconds=1), n=5)
    _screen(cast)
    assert not _cases(cast.acme).exists()
    usage(cast.acme, app.client, prompt_hash="abc", at=now - timedelta(seconds=1), n=1)
    fraud.policy_for(tenant=cast.acme).__class__.objects.filter(tenant=cast.acme).update(last_evaluated_at=None)
    _screen(cast)
    _screen(cast)
    case = _cases(cast.acme, Signal.RETRY_STORM).get()
    assert case.evidence["count"] == 10


def test_a_storm_paced_across_a_minute_boundary_is_one_storm(cast, app) -> None:
    # Five retries just before a clock minute and five just after: ten within two seconds.
    _policy(cast, retry_storm_repeats=10)
    boundary = timezone.now().replace(second=0, microsecond=0)
    if timezone.now() - boundary < timedelta(seconds=3):
        boundary -= timedelta(minutes=1)
    usage(cast.acme, app.client, prompt_hash="abc", at=boundary - timedelta(seconds=1), n=5)
    usage(cast.acme, app.client, prompt_hash="abc", at=boundary + timedelta(seconds=1), n=5)
    _screen(cast)
    case = _cases(cast.acme, Signal.RETRY_STORM).get()
    assert case.evidence["count"] == 10


def test_tool_calls_outside_the_clients_allowlist(cast, app) -> None:
    builtin_roles_seed(tenant=cast.acme)
    Tool.objects.create(tenant=cast.acme, name="search", allowlisted=True)
    Tool.objects.create(tenant=cast.acme, name="shell", allowlisted=False)
    _policy(cast, unlisted_tool_min_calls=2)
    usage(cast.acme, app.client, tool_calls=["search"], n=20)  # the developer role may execute tools
    usage(cast.acme, app.client, tool_calls=["shell"], n=1)
    _screen(cast)
    assert not _cases(cast.acme).exists()  # one call: under the minimum of 2
    usage(cast.acme, app.client, tool_calls=["search", "made-up-tool"], n=1)
    _screen(cast)
    _screen(cast)
    case = _cases(cast.acme, Signal.UNLISTED_TOOL).get()
    assert case.evidence["tools"] == {"made-up-tool": 1, "shell": 1}


def test_a_viewer_client_may_not_run_even_allowlisted_tools(cast) -> None:
    viewer = make_client(tenant=cast.acme, builtin_role="viewer", name="reports")
    Tool.objects.create(tenant=cast.acme, name="search", allowlisted=True)
    usage(cast.acme, viewer.client, tool_calls=["search"], n=1)
    _screen(cast)
    assert _cases(cast.acme, Signal.UNLISTED_TOOL).get().client_id == viewer.client.pk


def test_cost_spike_against_the_clients_own_baseline(cast, app) -> None:
    other = make_client(tenant=cast.acme, name="batch-jobs")
    _policy(cast, cost_spike_factor=Decimal(5), cost_min_events=10)
    for hour in range(2, 8):
        usage(cast.acme, app.client, cost="0.10", at=hours_ago(hour) + timedelta(minutes=5), n=10)  # 1.00 an hour
        usage(cast.acme, other.client, cost="2.00", at=hours_ago(hour) + timedelta(minutes=5), n=10)  # 20 an hour
    usage(cast.acme, app.client, cost="0.60", n=9)  # 5.40, but only 9 calls
    usage(cast.acme, other.client, cost="3.00", n=10)  # 30.00: a lot, but normal for it
    _screen(cast)
    assert not _cases(cast.acme).exists()
    usage(cast.acme, app.client, cost="0.60", n=1)  # 6.00 over 10 calls: above 5 × ~1.00
    _screen(cast)
    _screen(cast)
    case = _cases(cast.acme, Signal.COST_SPIKE).get()
    assert case.client_id == app.client.pk
    assert case.occurrences == 2


def test_a_disabled_policy_screens_nothing(cast, app) -> None:
    _policy(cast, enabled=False, retry_storm_repeats=2)
    usage(cast.acme, app.client, prompt_hash="abc", n=5)
    _screen(cast)
    assert not _cases(cast.acme).exists()


def test_review_is_audited_and_a_confirmed_case_disables_the_client(
    cast, app, django_capture_on_commit_callbacks
) -> None:
    reset_caches()
    token = issue_token(app)
    http = Client()
    assert http.get("/api/v1/me", **bearer(token)).status_code == 200
    _policy(cast, retry_storm_repeats=3)
    usage(cast.acme, app.client, prompt_hash="h", n=3)
    _screen(cast)
    case = _cases(cast.acme).get()
    admin = Membership.objects.get(tenant=cast.acme, user=cast.admin)
    viewer = Membership.objects.get(tenant=cast.acme, user=cast.viewer)
    with pytest.raises(ValidationError):
        fraud.case_assign(case=case, assignee=viewer, actor=admin)  # cannot open the queue
    fraud.case_assign(case=case, assignee=admin, actor=admin)
    with django_capture_on_commit_callbacks(execute=True):  # the client's state is published on commit
        fraud.case_confirm(case=case, actor=admin, note="scraping", disable_client=True)
    with pytest.raises(ValidationError):
        fraud.case_dismiss(case=case, actor=admin)
    case.refresh_from_db()
    assert (case.status, case.client_disabled, case.assignee_id) == ("confirmed", True, admin.pk)
    assert ApiClient.objects.get(pk=app.client.pk).status == ApiClient.Status.DISABLED
    actions = set(AuditEvent.objects.filter(tenant=cast.acme).values_list("action", flat=True))
    assert {"fraud_case.open", "fraud_case.assign", "fraud_case.confirm", "apiclient.disable"} <= actions
    refused = http.get("/api/v1/me", **bearer(token))  # no cache reset: refused at once
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused["WWW-Authenticate"]
    # A new case can open for the same client and signal once the first is decided.
    usage(cast.acme, app.client, prompt_hash="h", n=3)
    _screen(cast)
    assert _cases(cast.acme).count() == 2


def test_dismiss_keeps_the_client(cast, app) -> None:
    _policy(cast, retry_storm_repeats=3)
    usage(cast.acme, app.client, prompt_hash="h", n=3)
    _screen(cast)
    admin = Membership.objects.get(tenant=cast.acme, user=cast.admin)
    fraud.case_dismiss(case=_cases(cast.acme).get(), actor=admin, note="load test")
    assert ApiClient.objects.get(pk=app.client.pk).status == ApiClient.Status.ACTIVE
    assert _cases(cast.acme).get().status == "dismissed"


def test_another_tenants_usage_never_opens_a_case_here(cast) -> None:
    globex_app = make_client(tenant=cast.globex)
    usage(cast.globex, globex_app.client, prompt_hash="h", n=50)
    _screen(cast)
    assert not FraudCase.objects.exists()


def test_a_quiet_tenant_costs_a_handful_of_queries_per_run(cast, app, django_assert_max_num_queries) -> None:
    _screen(cast)  # the first run catches up on a day of hours
    with django_assert_max_num_queries(14):  # later runs: one aggregate per signal, no day of hours again
        _screen(cast)
