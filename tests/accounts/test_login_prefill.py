"""Home-realm discovery hands the e-mail to the password page; the page links back to SSO."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_login_page_prefills_the_email_and_links_to_sso(client) -> None:
    page = client.get("/accounts/login/?login=ada@unverified.example").content.decode()
    assert 'value="ada@unverified.example"' in page
    assert 'href="/sso/discover/"' in page


def test_prefill_is_escaped(client) -> None:
    page = client.get('/accounts/login/?login="><script>x</script>').content.decode()
    assert "<script>x</script>" not in page
