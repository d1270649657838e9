"""The platform audit page and export: staff only, every tenant plus the platform chain."""

from __future__ import annotations

import csv
import io

import pytest

from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record

URL = "/platform/audit/"
EXPORT = "/platform/audit/export/"


@pytest.fixture
def events(cast):
    record("acme.thing", tenant=cast.acme, actor=Actor.for_user(cast.owner))
    record("globex.thing", tenant=cast.globex, actor=Actor.for_user(cast.globex_owner))
    record("platform.tenant_create", actor=Actor.for_user(cast.staff), metadata={"slug": "globex"})


@pytest.mark.parametrize("url", [URL, EXPORT])
def test_only_staff(cast, client_for, client, url):
    assert client.get(url).status_code == 302
    assert client_for(cast.owner).get(url).status_code == 404
    assert client_for(cast.staff).get(url).status_code == 200


def test_staff_sees_every_tenant_and_the_platform_chain(cast, client_for, events):
    response = client_for(cast.staff).get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    for action in ("acme.thing", "globex.thing", "platform.tenant_create"):
        assert action in body
    assert "Platform audit log" in body
    assert 'href="/platform/audit/?tenant=acme"' in body


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [("acme", {"acme.thing"}), ("globex", {"globex.thing"}), ("platform", {"platform.tenant_create"})],
)
def test_tenant_filter(cast, client_for, events, tenant, expected):
    response = client_for(cast.staff).get(URL, {"tenant": tenant})
    assert response.status_code == 200
    rows = response.context["page"].rows
    # Sign-ins are platform events too (the client's login may add one): compare the rest.
    assert {event.action for event in rows} - {"auth.sign_in"} == expected
    expected_tenant = {"acme": cast.acme.pk, "globex": cast.globex.pk, "platform": None}[tenant]
    assert {event.tenant_id for event in rows} == {expected_tenant}


def test_unknown_tenant_is_a_400(cast, client_for, events):
    response = client_for(cast.staff).get(URL, {"tenant": "nope"})
    assert response.status_code == 400
    assert "no tenant with the slug" in response.content.decode()


def test_htmx_partial(cast, client_for, events):
    response = client_for(cast.staff).get(URL, {"tenant": "acme"}, headers={"HX-Request": "true"})
    assert response.content.decode().lstrip().startswith('<section id="audit-results"')


def test_platform_export_is_filtered_and_audited_on_the_platform_chain(cast, client_for, events):
    response = client_for(cast.staff).get(EXPORT, {"format": "csv", "tenant": "globex"})
    assert response.status_code == 200
    assert 'filename="audit-globex-' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["action"] for row in rows] == ["globex.thing"]
    export_event = AuditEvent.objects.get(action="audit.export")
    assert export_event.tenant_id is None
    assert export_event.metadata == {"format": "csv", "filters": {"tenant": "globex"}}


def test_platform_export_jsonl_and_bad_format(cast, client_for, events):
    client = client_for(cast.staff)
    response = client.get(EXPORT, {"format": "jsonl"})
    assert response.status_code == 200
    assert b"".join(response.streaming_content).count(b"\n") >= 3
    assert client.get(EXPORT, {"format": "xlsx"}).status_code == 400
