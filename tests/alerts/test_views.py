"""Alerts console pages: the permission contract, form errors, the secret shown once, the dashboard card."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.alerts.models import Alert, AlertRule, Delivery, FraudCase, WebhookEndpoint
from apps.alerts.services import lifecycle, raising, rules
from apps.alerts.services.fraud import policy_for
from apps.tenants.models import Membership
from tests.alerts.helpers import threshold_rule
from tests.contract import PageContract, PermissionContract, Ref, form_page
from tests.keys.helpers import make_client

pytestmark = pytest.mark.django_db

VIEW, MANAGE, REVIEW = "audit.read", "role.manage", "apiclient.manage"
RULE_POST = {
    "name": "Spend",
    "metric": "spend_per_hour",
    "mode": "threshold",
    "threshold": "5",
    "factor": "3",
    "alpha": "0.3",
    "min_volume": "1",
    "enabled": "on",
}
ENDPOINT_POST = {"name": "hook", "url": "https://93.184.216.34/hook", "send_alerts": "on", "enabled": "on"}
POLICY_POST = {
    "enabled": "on",
    "long_context_tokens": "1000",
    "long_context_min_events": "2",
    "retry_storm_repeats": "5",
    "unlisted_tool_min_calls": "1",
    "cost_spike_factor": "4",
    "cost_min_events": "5",
}


def _obj(name: str, globex: str) -> dict:
    return {"kwargs": {"pk": Ref(name)}, "foreign": ({"pk": Ref(globex)},)}


def _seed(tenant, name: str):
    rule = threshold_rule(tenant, "sign_in_failures_per_hour", threshold="1", name=f"{name} rule")
    now = timezone.now()
    endpoint = rules.endpoint_create(
        tenant=tenant, actor=None, name=f"{name} hook", url="https://93.184.216.34/h"
    ).endpoint
    alert = raising.alert_raise(rule=rule, observed=Decimal(9), expected=Decimal(1), volume=9, start=now, end=now).row
    Delivery.objects.filter(alert=alert).update(status="failed", attempts=6)
    delivery = Delivery.objects.filter(alert=alert).first()
    client = make_client(tenant=tenant, name=f"{name}-app").client
    case = raising.case_raise(
        policy=policy_for(tenant=tenant), signal="retry_storm", client=client, summary="storm", evidence={"count": 30}
    ).row
    return rule, endpoint, alert, delivery, case


@pytest.fixture
def world(cast):
    cast.rule, cast.endpoint, cast.alert, cast.delivery, cast.case = _seed(cast.acme, "acme")
    cast.g_rule, cast.g_endpoint, cast.g_alert, cast.g_delivery, cast.g_case = _seed(cast.globex, "globex")
    cast.admin_membership = Membership.objects.get(tenant=cast.acme, user=cast.admin)
    return cast


class TestAlertPagesContract(PermissionContract):
    app_namespace = "alerts"
    contracts = (
        PageContract("alerts:alert_list", VIEW),
        PageContract("alerts:alert_detail", VIEW, **_obj("alert", "g_alert")),
        PageContract("alerts:alert_acknowledge", MANAGE, method="post", ok_status=302, **_obj("alert", "g_alert")),
        PageContract("alerts:alert_resolve", MANAGE, method="post", ok_status=302, **_obj("alert", "g_alert")),
        PageContract("alerts:rule_list", VIEW),
        *form_page("alerts:rule_create", MANAGE, data=RULE_POST),
        *form_page("alerts:rule_edit", MANAGE, data={**RULE_POST, "name": "Renamed"}, **_obj("rule", "g_rule")),
        *form_page("alerts:rule_delete", MANAGE, data={}, **_obj("rule", "g_rule")),
        PageContract("alerts:endpoint_list", VIEW),
        *form_page("alerts:endpoint_create", MANAGE, data=ENDPOINT_POST, ok_status=200),
        *form_page("alerts:endpoint_edit", MANAGE, data=ENDPOINT_POST, **_obj("endpoint", "g_endpoint")),
        PageContract("alerts:endpoint_rotate", MANAGE, method="post", **_obj("endpoint", "g_endpoint")),
        *form_page("alerts:endpoint_delete", MANAGE, data={}, **_obj("endpoint", "g_endpoint")),
        PageContract("alerts:delivery_list", VIEW),
        PageContract("alerts:delivery_detail", VIEW, **_obj("delivery", "g_delivery")),
        PageContract("alerts:delivery_retry", MANAGE, method="post", ok_status=302, **_obj("delivery", "g_delivery")),
        PageContract("alerts:case_list", REVIEW),
        PageContract("alerts:case_detail", REVIEW, **_obj("case", "g_case")),
        PageContract(
            "alerts:case_assign",
            REVIEW,
            method="post",
            data={"assignee": Ref("admin_membership")},
            ok_status=302,
            **_obj("case", "g_case"),
        ),
        PageContract(
            "alerts:case_decide",
            REVIEW,
            method="post",
            data={"decision": "dismiss", "note": "test"},
            ok_status=302,
            **_obj("case", "g_case"),
        ),
        *form_page("alerts:policy_edit", REVIEW, data=POLICY_POST),
    )

    @pytest.fixture
    def contract_world(self, world):
        return world

    def state(self, world):
        return (
            super().state(world),
            tuple(AlertRule.objects.order_by("pk").values_list("pk", "tenant_id", "name", "threshold")),
            tuple(Alert.objects.order_by("pk").values_list("pk", "status")),
            tuple(WebhookEndpoint.objects.order_by("pk").values_list("pk", "name", "url", "secret_hint")),
            tuple(Delivery.objects.order_by("pk").values_list("pk", "status", "attempts")),
            tuple(FraudCase.objects.order_by("pk").values_list("pk", "status", "assignee_id")),
        )


def _url(name: str, **kwargs) -> str:
    return reverse(name, kwargs={"tenant_slug": "acme", **kwargs})


@pytest.mark.parametrize("threshold", ["0", "-5", "-0.01"])
def test_a_zero_or_negative_threshold_is_a_form_error(cast, client_for, threshold) -> None:
    response = client_for(cast.admin).post(_url("alerts:rule_create"), {**RULE_POST, "threshold": threshold})
    assert response.status_code == 200
    assert "The threshold must be greater than zero." in response.content.decode()
    assert not AlertRule.objects.exists()


def test_a_fixed_rule_without_threshold_and_bad_factor_are_form_errors(cast, client_for) -> None:
    data = {**RULE_POST, "threshold": "", "factor": "1", "alpha": "1.5", "email_recipients": "ok@x.example, nope"}
    body = client_for(cast.admin).post(_url("alerts:rule_create"), data).content.decode()
    assert "needs a threshold" in body
    assert "greater than 1" in body
    assert "at most 1" in body
    assert "Not an e-mail address: nope" in body
    assert not AlertRule.objects.exists()


def test_a_private_webhook_url_is_a_form_error(cast, client_for) -> None:
    body = (
        client_for(cast.admin)
        .post(_url("alerts:endpoint_create"), {**ENDPOINT_POST, "url": "https://169.254.169.254/latest"})
        .content.decode()
    )
    assert "private or reserved network address" in body
    assert not WebhookEndpoint.objects.exists()


def test_the_secret_is_shown_once_and_rotation_shows_a_new_one(cast, client_for) -> None:
    client = client_for(cast.admin)
    response = client.post(_url("alerts:endpoint_create"), ENDPOINT_POST)
    endpoint = WebhookEndpoint.objects.get()
    secret = response.context["secret"]
    assert secret in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert secret not in client.get(_url("alerts:endpoint_list")).content.decode()
    assert secret not in client.get(_url("alerts:endpoint_edit", pk=endpoint.pk)).content.decode()
    rotated = client.post(_url("alerts:endpoint_rotate", pk=endpoint.pk))
    new_secret = rotated.context["secret"]
    assert new_secret != secret
    assert new_secret in rotated.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.previous_secret_until > timezone.now() + timedelta(hours=23)


def test_a_viewer_sees_no_management_buttons(cast, world, client_for) -> None:
    auditor = Membership.objects.get(tenant=cast.acme, user=cast.viewer)
    Membership.objects.filter(pk=auditor.pk).update(role="auditor")
    body = client_for(cast.viewer).get(_url("alerts:alert_detail", pk=cast.alert.pk)).content.decode()
    assert cast.alert.title in body
    assert "Acknowledge" not in body


def test_the_dashboard_card_shows_open_alerts_and_cases(cast, world, client_for) -> None:
    body = client_for(cast.owner).get(reverse("tenants:dashboard", kwargs={"tenant_slug": "acme"})).content.decode()
    assert cast.alert.title in body
    assert "1 fraud case waiting for review" in body
    assert "globex" not in body.lower()
    member_body = client_for(cast.member).get(reverse("tenants:dashboard", kwargs={"tenant_slug": "acme"})).content
    assert cast.alert.title.encode() not in member_body  # no audit.read: no card


def test_alert_list_queries_stay_flat(cast, world, client_for, django_assert_max_num_queries) -> None:
    client = client_for(cast.owner)
    client.get(_url("alerts:alert_list"))
    for i in range(30):
        rule = threshold_rule(cast.acme, "denied_checks_per_hour", threshold="1", name=f"r{i}")
        now = timezone.now()
        raising.alert_raise(rule=rule, observed=Decimal(3), expected=Decimal(1), volume=3, start=now, end=now)
    with django_assert_max_num_queries(20):
        response = client.get(_url("alerts:alert_list"))
    assert response.status_code == 200
    assert response.context["page"].paginator.count == 31


@pytest.mark.parametrize(
    "page", ["alerts:delivery_list", "alerts:case_list", "alerts:rule_list", "alerts:endpoint_list"]
)
def test_other_lists_stay_flat(cast, world, client_for, django_assert_max_num_queries, page) -> None:
    client = client_for(cast.owner)
    with django_assert_max_num_queries(40) as few:
        client.get(_url(page))
    baseline = len(few.captured_queries)
    for i in range(12):
        rule = threshold_rule(cast.acme, "denied_checks_per_hour", threshold="1", name=f"more{i}")
        now = timezone.now()
        raising.alert_raise(rule=rule, observed=Decimal(3), expected=Decimal(1), volume=3, start=now, end=now)
        client_row = make_client(tenant=cast.acme, name=f"more{i}").client
        raising.case_raise(
            policy=policy_for(tenant=cast.acme), signal="cost_spike", client=client_row, summary="s", evidence={}
        )
        if i < 8:
            rules.endpoint_create(tenant=cast.acme, actor=None, name=f"more{i}", url="https://93.184.216.34/h")
    with django_assert_max_num_queries(baseline):
        assert client.get(_url(page)).status_code == 200


def test_the_alert_list_shows_active_alerts_unless_asked(cast, world, client_for) -> None:
    client = client_for(cast.owner)
    owner = Membership.objects.get(tenant=cast.acme, user=cast.owner)
    lifecycle.alert_resolve(alert=cast.alert, actor=owner)
    assert client.get(_url("alerts:alert_list")).context["page"].paginator.count == 0
    assert client.get(_url("alerts:alert_list") + "?page=1").context["page"].paginator.count == 0
    assert client.get(_url("alerts:alert_list") + "?status=").context["page"].paginator.count == 1
    assert client.get(_url("alerts:alert_list") + "?status=resolved").context["page"].paginator.count == 1
    assert client.get(_url("alerts:alert_list") + "?status=bogus").status_code == 200  # ignored, said so
