"""The add page's SP details never change between visits or tabs; abandoned drafts go (#9, item 1).

Slips and attacks: a reload or a second tab showing new ACS/entity/redirect
values (what the admin registered at the IdP silently breaks), unbounded drafts
from reloading, saving into a draft of another admin or tenant by replaying its
form token, the cleanup deleting a connection that was ever in use.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.sso import services
from apps.sso.models import ExternalIdentity, SSOConnection
from config.celery import app as celery_app
from tests.sso import saml_helpers as h
from tests.sso.test_flow_support import events, https_client, saml_connection

pytestmark = pytest.mark.django_db
BASE = "/t/acme/settings/sso/"


def _shown(page: str, key: str) -> str:
    return page.split(f'data-sp="{key}">')[1].split("<")[0]


def _draft_token(page: str) -> str:
    return page.split('name="draft_id" value="')[1].split('"')[0]


@pytest.mark.parametrize(
    ("kind", "keys"), [("saml", ("entity_id", "acs_url", "metadata_url")), ("oidc", ("redirect_uri",))]
)
def test_sp_details_are_the_same_on_every_visit_and_tab(cast, kind, keys) -> None:
    first_tab, second_tab = https_client(cast.admin), https_client(cast.admin)

    pages = [
        client.get(f"{BASE}connections/new/{kind}/").content.decode() for client in (first_tab, second_tab, first_tab)
    ]

    for key in keys:
        assert len({_shown(page, key) for page in pages}) == 1
    drafts = SSOConnection.objects.filter(tenant=cast.acme, setup_pending=True)
    assert drafts.count() == 1  # reloads reuse one draft: no unbounded rows
    assert str(drafts.get().public_id) in _shown(pages[0], keys[0])


def test_each_admin_and_protocol_has_its_own_draft(cast) -> None:
    https_client(cast.admin).get(f"{BASE}connections/new/saml/")
    https_client(cast.admin).get(f"{BASE}connections/new/oidc/")
    https_client(cast.owner).get(f"{BASE}connections/new/saml/")
    for _ in range(5):
        https_client(cast.owner).get(f"{BASE}connections/new/saml/")

    assert SSOConnection.objects.filter(setup_pending=True).count() == 3


def test_metadata_downloads_from_the_first_screen(cast) -> None:
    admin = https_client(cast.admin)
    page = admin.get(f"{BASE}connections/new/saml/").content.decode()
    draft = SSOConnection.objects.get(setup_pending=True)

    response = https_client().get(f"/sso/saml/{draft.public_id}/metadata/?download=1")

    assert 'id="sp-metadata-download"' in page
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert _shown(page, "acs_url") in response.content.decode()


def test_saving_keeps_the_shown_values_and_a_replay_creates_nothing(cast) -> None:
    admin = https_client(cast.admin)
    page = admin.get(f"{BASE}connections/new/saml/").content.decode()
    form = {"name": "Okta", "source": "metadata_xml", "metadata_xml": h.idp_metadata_xml(), "preset": "okta"}
    form |= {"want_assertion_signed": "on", "draft_id": _draft_token(page)}

    assert admin.post(f"{BASE}connections/new/saml/", form).status_code == 302
    replay = https_client(cast.admin).post(f"{BASE}connections/new/saml/", {**form, "name": "Okta 2"})

    connection = SSOConnection.objects.get(tenant=cast.acme)
    assert not connection.setup_pending
    assert _shown(page, "acs_url") == f"https://bastion.example.com/sso/saml/{connection.public_id}/acs/"
    assert replay.status_code == 400
    assert "already used" in replay.content.decode()
    assert SSOConnection.objects.filter(tenant=cast.acme).count() == 1
    assert len(events("sso.connection_create", tenant=cast.acme)) == 1


def test_another_tenants_admin_cannot_fill_my_draft(cast) -> None:
    page = https_client(cast.admin).get(f"{BASE}connections/new/saml/").content.decode()
    mine = SSOConnection.objects.get(setup_pending=True)
    form = {"name": "Evil", "source": "metadata_xml", "metadata_xml": h.idp_metadata_xml(), "preset": "okta"}

    response = https_client(cast.globex_owner).post(
        "/t/globex/settings/sso/connections/new/saml/", {**form, "draft_id": _draft_token(page)}
    )

    assert response.status_code == 400
    mine.refresh_from_db()
    assert mine.setup_pending
    assert (mine.name, mine.config) == ("", {})
    assert not SSOConnection.objects.filter(tenant=cast.globex, setup_pending=False).exists()


def test_empty_drafts_are_not_listed_or_opened(cast) -> None:
    admin = https_client(cast.admin)
    admin.get(f"{BASE}connections/new/saml/")
    draft = SSOConnection.objects.get(setup_pending=True)

    assert admin.get(f"{BASE}connections/{draft.pk}/").status_code == 404
    assert admin.post(f"{BASE}connections/{draft.pk}/enable/", {"confirm": "on"}).status_code == 404
    assert f"connections/{draft.pk}/" not in admin.get(BASE).content.decode()


def _age(connection: SSOConnection, days: int) -> None:
    then = timezone.now() - timedelta(days=days)
    SSOConnection.objects.filter(pk=connection.pk).update(created_at=then, updated_at=then)


def test_abandoned_drafts_are_purged_and_nothing_that_was_used(cast) -> None:
    empty_old = services.connection_draft_open(tenant=cast.acme, kind="saml", actor=cast.admin)
    empty_new = services.connection_draft_open(tenant=cast.acme, kind="oidc", actor=cast.admin)
    configured_old = saml_connection(cast.acme, status=SSOConnection.Status.DRAFT)
    tested_old = saml_connection(cast.globex, status=SSOConnection.Status.DRAFT)
    SSOConnection.objects.filter(pk=tested_old.pk).update(first_tested_at=timezone.now() - timedelta(days=30))
    retest_old = saml_connection(cast.globex, status=SSOConnection.Status.DRAFT)  # e.g. trust changed; has links
    ExternalIdentity.objects.create(connection=retest_old, subject="s", user=cast.globex_owner)
    for connection in (empty_old, configured_old, tested_old, retest_old):
        _age(connection, 8)
    _age(empty_new, 6)

    assert services.connection_drafts_purge() == 2
    assert services.connection_drafts_purge() == 0  # idempotent

    left = set(SSOConnection.objects.values_list("pk", flat=True))
    assert left == {empty_new.pk, tested_old.pk, retest_old.pk}
    (event,) = events("sso.connection_delete", tenant=cast.acme)  # the configured one is audited
    assert event.metadata["reason"] == "abandoned_draft"


def test_the_purge_is_on_the_beat_schedule() -> None:
    entries = [
        e for e in celery_app.conf.beat_schedule.values() if e["task"] == "apps.sso.tasks.purge_abandoned_drafts"
    ]
    assert len(entries) == 1
    assert entries[0]["schedule"] <= 24 * 3600
