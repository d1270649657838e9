"""One htmx helper: the same URL answers with the full page or its fragment, and says so in Vary."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

AUDIT = "/t/acme/audit/"
MEMBERS = "/t/acme/members/"


def _body(response) -> str:
    return response.content.decode().lstrip()


@pytest.mark.parametrize(("url", "fragment_start"), [(AUDIT, '<section id="audit-results"')])
def test_htmx_request_gets_the_named_partial(cast, client_for, url, fragment_start):
    client = client_for(cast.owner)
    full = client.get(url)
    partial = client.get(url, headers={"HX-Request": "true"})
    assert _body(full).startswith("<!")
    assert _body(partial).startswith(fragment_start)
    for response in (full, partial):
        assert "HX-Request" in response["Vary"]


def test_history_restore_gets_the_full_page(cast, client_for):
    """htmx swaps a history-restore answer in as the whole body: a fragment would lose the layout."""
    response = client_for(cast.owner).get(AUDIT, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert _body(response).startswith("<!")


def test_partial_template_of_its_own(cast, client_for):
    client = client_for(cast.owner)
    partial = _body(client.get(MEMBERS, headers={"HX-Request": "true"}))
    full = _body(client.get(MEMBERS))
    assert not partial.startswith("<!")
    assert full.startswith("<!")
    assert len(partial) < len(full)
