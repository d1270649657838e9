"""Webhook URLs pass the same checks as tool egress: parser agreement, then the SSRF-safe address policy."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.alerts.models import Delivery, WebhookEndpoint
from apps.alerts.services import raising, rules
from apps.audit.models import AuditEvent
from tests.alerts.helpers import threshold_rule

pytestmark = pytest.mark.django_db

REFUSED = [
    "https://10.0.0.5/hook",  # private
    "https://192.168.1.10/hook",
    "https://169.254.169.254/latest/meta-data",  # cloud metadata, link-local
    "https://[fe80::1]/hook",
    "https://127.0.0.1/hook",  # loopback (allowed only in development and tests)
    "http://localhost:8080/hook",
    "https://[::ffff:10.0.0.1]/hook",  # IPv4-mapped private
    "https://0.0.0.0/hook",
    "http://93.184.216.34/hook",  # public but plain http
    "https://93.184.216.34:8443/hook",  # a port that is not allowed
    "https://user:pw@93.184.216.34/hook",  # credentials in the URL
    "https://93.184.216.34\\@evil.example/hook",  # parsers disagree about the host
    "https://0x7f000001/hook",  # an obfuscated IP
    "ftp://93.184.216.34/hook",
    "not a url",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_and_odd_urls_are_refused(cast, url) -> None:
    with pytest.raises(ValidationError) as caught:
        rules.endpoint_create(tenant=cast.acme, actor=None, name="x", url=url)
    assert "url" in caught.value.message_dict
    assert not WebhookEndpoint.objects.exists()


def test_a_public_https_address_is_accepted_and_its_secret_stored_encrypted(cast) -> None:
    created = rules.endpoint_create(tenant=cast.acme, actor=None, name="x", url="https://93.184.216.34/hook")
    stored = WebhookEndpoint.objects.get()
    assert created.secret.startswith("whsec_")
    assert created.secret not in stored.secret_encrypted
    assert stored.secret_hint == created.secret[-4:]


def test_private_networks_only_when_the_installation_allows_them(cast, settings) -> None:
    settings.ALERTS_WEBHOOK_ALLOW_PRIVATE = True
    rules.endpoint_create(tenant=cast.acme, actor=None, name="onprem", url="https://10.0.0.5/hook")
    for url in ("https://169.254.169.254/", "https://127.0.0.1/hook"):  # never link-local; loopback has its own switch
        with pytest.raises(ValidationError):
            rules.endpoint_create(tenant=cast.acme, actor=None, name="x", url=url)


def test_loopback_for_a_local_receiver_in_tests_only(cast, settings) -> None:
    settings.ALERTS_WEBHOOK_ALLOW_LOOPBACK = True
    rules.endpoint_create(tenant=cast.acme, actor=None, name="local", url="http://127.0.0.1:9999/hook")
    with pytest.raises(ValidationError):
        rules.endpoint_create(tenant=cast.acme, actor=None, name="y", url="http://10.0.0.5/hook")


def test_an_update_to_a_private_url_is_refused_and_changes_nothing(cast) -> None:
    endpoint = rules.endpoint_create(tenant=cast.acme, actor=None, name="x", url="https://93.184.216.34/hook").endpoint
    with pytest.raises(ValidationError):
        rules.endpoint_update(endpoint=endpoint, data={"url": "https://10.1.2.3/"}, actor=None)
    endpoint.refresh_from_db()
    assert endpoint.url == "https://93.184.216.34/hook"


def test_a_secret_in_the_url_path_stays_out_of_the_log_and_the_delivery_list(cast) -> None:
    url = "https://93.184.216.34/services/T000/B000/s3cr3tT0k3n"
    endpoint = rules.endpoint_create(tenant=cast.acme, actor=None, name="slack", url=url).endpoint
    rules.endpoint_update(endpoint=endpoint, data={"url": url.replace("s3cr3t", "n3w")}, actor=None)
    rule = threshold_rule(cast.acme, "spend_per_hour", threshold="1")

    now = timezone.now()
    raising.alert_raise(rule=rule, observed=Decimal(2), expected=Decimal(1), volume=1, start=now, end=now)
    assert Delivery.objects.get().destination == "https://93.184.216.34/…"
    logged = [
        str(m)
        for m in AuditEvent.objects.filter(action__startswith="alert_endpoint.").values_list("metadata", flat=True)
    ]
    assert len(logged) == 2  # the path change is still recorded, by fingerprint
    assert all("T0k3n" not in m for m in logged)


def test_endpoints_per_tenant_are_capped(cast) -> None:
    for i in range(rules.MAX_ENDPOINTS):
        rules.endpoint_create(tenant=cast.acme, actor=None, name=f"e{i}", url="https://93.184.216.34/h")
    with pytest.raises(ValidationError):
        rules.endpoint_create(tenant=cast.acme, actor=None, name="one more", url="https://93.184.216.34/h")
    rules.endpoint_create(tenant=cast.globex, actor=None, name="e0", url="https://93.184.216.34/h")  # per tenant
