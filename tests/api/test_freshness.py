"""A revoked grant or a role change reaches a warm API process on the very next call (explicit invalidation)."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.access import permsets
from apps.keys import services as keys_services
from tests.api.conftest import Api
from tests.keys.helpers import bearer, issue_token, make_client


def _as_other_process() -> None:
    # The console that made the change runs in another process than the API: this process must not
    # learn of the change from its own bump bookkeeping, only from what is shared.
    permsets._latest.clear()


def _read(api: Api, headers: dict[str, str]) -> bool:
    body = {
        "subject": {"type": "client"},
        "action": "dataset.read",
        "resource": {"type": "dataset", "id": str(api.dataset.pk)},
    }
    response = api.http.post("/api/v1/authorize", body, content_type="application/json", **headers)
    assert response.status_code == 200, response.content
    return response.json()["allowed"]


def test_a_revoked_grant_is_refused_on_the_very_next_call(api: Api, cast, django_capture_on_commit_callbacks) -> None:
    viewer = make_client(tenant=cast.acme, builtin_role="viewer")
    headers = bearer(issue_token(viewer))
    with django_capture_on_commit_callbacks(execute=True):
        keys_services.apiclient_grant_assign(client=viewer.client, action="dataset.read", obj=api.dataset)
    _as_other_process()
    assert _read(api, headers) is True
    assert _read(api, headers) is True  # warm: the process holds the client and its permission set
    with django_capture_on_commit_callbacks(execute=True):  # committed, as the console's request does
        keys_services.apiclient_grant_revoke(client=viewer.client, action="dataset.read", obj=api.dataset)
    _as_other_process()
    assert _read(api, headers) is False


def test_a_changed_role_is_seen_on_the_very_next_call(api: Api, cast, django_capture_on_commit_callbacks) -> None:
    from apps.access import services as access_services
    from apps.access.models import Role

    with django_capture_on_commit_callbacks(execute=True):
        role = access_services.role_create(
            tenant=cast.acme, key="readers", name="readers", permissions=["tenant.view", "dataset.read"], actor=None
        )
    client = make_client(tenant=cast.acme, role=role)
    headers = bearer(issue_token(client))
    _as_other_process()
    assert _read(api, headers) is True
    assert _read(api, headers) is True
    with django_capture_on_commit_callbacks(execute=True):
        access_services.role_update(
            role=Role.objects.get(pk=role.pk), name="readers", permissions=["tenant.view"], actor=None
        )
    _as_other_process()
    assert _read(api, headers) is False


def test_a_missing_published_version_costs_one_query_and_is_put_back(api: Api, cast) -> None:
    assert _read(api, api.headers) is True
    cache.delete(permsets.version_cache_key(cast.acme.pk))
    with CaptureQueriesContext(connection) as queries:
        assert _read(api, api.headers) is True
    assert [q["sql"] for q in queries if "access_version" in q["sql"]]
    assert (
        cache.get(permsets.version_cache_key(cast.acme.pk))
        == cast.acme.__class__.objects.get(pk=cast.acme.pk).access_version
    )
    with CaptureQueriesContext(connection) as queries:
        assert _read(api, api.headers) is True
    assert len(queries) == 0


def test_an_older_version_never_replaces_a_newer_one(cast) -> None:
    permsets.publish_version(cast.acme.pk, 7)
    permsets.publish_version(cast.acme.pk, 6)  # a commit hook running late
    assert cache.get(permsets.version_cache_key(cast.acme.pk)) == 7


def test_a_reclassified_dataset_is_refused_on_the_very_next_call(
    api: Api, cast, django_capture_on_commit_callbacks
) -> None:
    """A dataset made restricted stops being readable through a role-wide dataset.read at once (no TTL wait)."""
    from apps.catalog import services as catalog_services
    from apps.catalog.models import Dataset

    reader = make_client(tenant=cast.acme, builtin_role="member")
    headers = bearer(issue_token(reader))
    _as_other_process()
    assert _read(api, headers) is True
    assert _read(api, headers) is True  # warm: the dataset row is held by this process
    with django_capture_on_commit_callbacks(execute=True):
        catalog_services.dataset_update(
            dataset=Dataset.objects.get(pk=api.dataset.pk), data={"classification": "restricted"}, actor=None
        )
    _as_other_process()
    assert _read(api, headers) is False
