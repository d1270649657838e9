"""Content-Security-Policy and Permissions-Policy, from the attacker's side.

An attacker who gets markup into a page (a tenant name, an IdP's certificate
subject, a filter value echoed back) must not get script to run, styles to
restyle the page into a phishing form, the console into a frame, or a form to
post anywhere but Bastion. So every kind of page carries the policy with a nonce
nobody can guess in advance, and our templates hold nothing the policy would
have to allow (inline handlers, style attributes, un-nonced inline code).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from apps.sso import selectors as sso_selectors
from apps.sso.models import SSOConnection
from config import urls as project_urls

TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates"
NONCE_RE = re.compile(r"'nonce-([A-Za-z0-9+/=]+)'")


def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("an unhandled error, to see the 500 page")


# The project's URLs plus one view that fails, for the 500 page.
urlpatterns = [*project_urls.urlpatterns, path("csp-test/boom/", _boom)]
handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500


def _directives(response: HttpResponse) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.status_code} {getattr(response, 'url', '')}"
    parsed: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def _nonce(response: HttpResponse) -> str:
    match = NONCE_RE.search(response.headers["Content-Security-Policy"])
    assert match, response.headers["Content-Security-Policy"]
    return match.group(1)


def _assert_strict(response: HttpResponse) -> None:
    policy = _directives(response)
    nonce = _nonce(response)
    for directive in ("script-src", "style-src"):
        assert f"'nonce-{nonce}'" in policy[directive], (directive, policy)
        assert "'unsafe-inline'" not in policy[directive]
        assert "'unsafe-eval'" not in policy[directive]
        assert "*" not in policy[directive]
    assert "script-src-attr" not in policy  # no inline handlers allowed back in
    assert "style-src-attr" not in policy
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"][0] == "'self'"
    permissions = response.headers.get("Permissions-Policy", "")
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()"):
        assert feature in permissions, permissions
    # Security keys (WebAuthn MFA) keep working on Bastion's own pages.
    assert "publickey-credentials-get=(self)" in permissions


def _page_kinds(cast, client_for) -> list[tuple[str, HttpResponse]]:
    anonymous = Client()
    broken = Client(raise_request_exception=False)
    member = client_for(cast.member)
    return [
        ("sign-in", anonymous.get("/accounts/login/")),
        ("e-mail-first sign-in", anonymous.get("/sso/discover/")),
        ("404", member.get("/no-such-page/")),
        ("403", member.get("/t/acme/settings/sso/")),
        ("500", broken.get("/csp-test/boom/")),
        ("console page", member.get("/t/acme/")),
        ("console list", member.get("/t/acme/catalog/datasets/")),
        ("htmx partial", member.get("/t/acme/catalog/tools/?risk_level=medium", HTTP_HX_REQUEST="true")),
        ("platform page", client_for(cast.staff).get("/platform/")),
    ]


@pytest.mark.urls(__name__)
def test_every_kind_of_page_sends_a_strict_policy_with_a_nonce(cast, client_for) -> None:
    expected = {"404": 404, "403": 403, "500": 500}
    for kind, response in _page_kinds(cast, client_for):
        assert response.status_code == expected.get(kind, 200), (kind, response.status_code)
        _assert_strict(response)


@pytest.mark.urls(__name__)
def test_the_nonce_is_fresh_on_every_response(cast, client_for) -> None:
    """A nonce seen once (in a cached page, a log, a proxy) is worthless for the next response."""
    nonces = [_nonce(response) for _kind, response in _page_kinds(cast, client_for) + _page_kinds(cast, client_for)]
    assert len(set(nonces)) == len(nonces)
    assert all(len(nonce) >= 22 for nonce in nonces)  # 16 random bytes, base64


def test_the_pages_own_scripts_carry_the_headers_nonce(cast, client_for) -> None:
    """The nonce in the header is the one on the page's script tags: the page's own code runs, nothing else."""
    response = client_for(cast.member).get("/t/acme/")
    nonce = _nonce(response)
    body = response.content.decode()
    scripts = re.findall(r"<script\b[^>]*>", body)
    assert scripts, "base.html loads htmx and bastion.js"
    for tag in scripts:
        assert f'nonce="{nonce}"' in tag or 'type="application/json"' in tag, tag
    # htmx may not inject its indicator <style> nor evaluate hx-on / inline scripts in swapped HTML.
    assert '"includeIndicatorStyles": false' in body
    assert '"allowEval": false' in body
    assert '"allowScriptTags": false' in body


@pytest.mark.urls(__name__)
def test_the_500_page_styles_itself_with_the_nonce(db) -> None:
    """The bare 500 page keeps its inline style, allowed by this response's nonce only."""
    response = Client(raise_request_exception=False).get("/csp-test/boom/")
    assert response.status_code == 500
    assert f'<style nonce="{_nonce(response)}">' in response.content.decode()


# --- form-action: where a page's forms may end -------------------------------------------------


def test_a_console_page_refuses_forms_to_other_origins(cast, client_for) -> None:
    """Injected markup cannot post the console's data (or a CSRF token) to another site."""
    policy = _directives(client_for(cast.admin).get("/t/acme/members/"))
    assert policy["form-action"] == ["'self'"]


def test_email_first_sign_in_may_continue_at_an_https_identity_provider(db) -> None:
    policy = _directives(Client().get("/sso/discover/"))
    assert policy["form-action"] == ["'self'", "https:"]


def _saml(tenant, sso_url: str) -> SSOConnection:
    return SSOConnection.objects.create(
        tenant=tenant, name="Okta", kind=SSOConnection.Kind.SAML, config={"idp_sso_url": sso_url}
    )


def test_test_sign_in_form_may_end_at_its_own_idp_only(cast, client_for) -> None:
    connection = _saml(cast.acme, "https://acme.okta.example:8443/app/sso/saml")
    response = client_for(cast.owner).get(f"/t/acme/settings/sso/connections/{connection.pk}/")
    assert response.status_code == 200
    assert _directives(response)["form-action"] == ["'self'", "https://acme.okta.example:8443"]


@pytest.mark.parametrize(
    "sso_url",
    [
        "https://idp.example; script-src 'unsafe-inline'",
        "https://idp.example,evil.example/sso",
        "https://idp.example'/sso",
        "javascript:alert(1)",
        "",
    ],
)
def test_an_idp_url_cannot_write_into_the_policy(cast, sso_url: str) -> None:
    """The IdP's URL is set by a tenant admin: it may not add directives or sources to the header."""
    assert sso_selectors.idp_sign_in_origin(_saml(cast.acme, sso_url)) is None


def test_an_idp_url_with_credentials_gives_only_its_origin(cast) -> None:
    connection = _saml(cast.acme, "https://user:secret@idp.example/sso")
    assert sso_selectors.idp_sign_in_origin(connection) == "https://idp.example"


# --- templates: nothing the policy would have to allow ------------------------------------------


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name.lower(): value or "" for name, value in attrs}
        line = self.getpos()[0]
        for name, value in names.items():
            if re.fullmatch(r"on[a-z]+", name):
                self.problems.append(f"line {line}: <{tag} {name}=…> inline event handler")
            if name == "style":
                self.problems.append(f"line {line}: <{tag} style=…> style attribute")
            if name.startswith(("hx-on", "hx-vars")) or (name == "hx-vals" and value.strip().startswith("js:")):
                self.problems.append(f"line {line}: <{tag} {name}=…> htmx would eval this")
            if value.strip().lower().startswith("javascript:"):
                self.problems.append(f"line {line}: <{tag} {name}=javascript:…> script URL")
        if tag in ("script", "style") and "nonce" not in names:
            if tag == "script" and names.get("type") == "application/json":
                return  # a data block, never executed
            self.problems.append(f"line {line}: <{tag}> without nonce")


DJANGO_COMMENTS_RE = re.compile(r"\{#.*?#\}|\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}", re.DOTALL)


def _template_problems(source: str) -> list[str]:
    source = DJANGO_COMMENTS_RE.sub("", source)  # a comment may name <style> without being one
    collector = _TagCollector()
    collector.feed(source)
    collector.close()
    problems = collector.problems
    # Belt and braces for markup the parser reads differently (attributes built by template tags).
    for match in re.finditer(r"<[a-zA-Z][^<>]*?\s(on[a-z]+|style)\s*=", source):
        problems.append(f"offset {match.start()}: {match.group(1)}= attribute")
    return problems


def test_templates_hold_no_inline_code_the_policy_would_have_to_allow() -> None:
    found = {}
    templates = sorted(TEMPLATES_DIR.rglob("*.html"))
    assert len(templates) > 50
    for template in templates:
        problems = _template_problems(template.read_text())
        if problems:
            found[str(template.relative_to(TEMPLATES_DIR))] = problems
    assert found == {}


@pytest.mark.parametrize(
    "markup",
    [
        '<body onload="document.forms[0].submit()">',
        "<form onsubmit=\"return confirm('x')\">",
        '<td style="word-break: break-all">',
        "<script>alert(1)</script>",
        "<style>body{}</style>",
        '<div hx-on::before-swap="x()">',
        '<a href="javascript:history.back()">',
        "<div hx-vals='js:{a: b()}'>",
    ],
)
def test_the_template_check_catches_each_kind(markup: str) -> None:
    assert _template_problems(markup)


@pytest.mark.parametrize(
    "markup",
    [
        '<script src="/static/js/htmx.min.js" nonce="{{ request.csp_nonce }}" defer></script>',
        '<style nonce="{{ request.csp_nonce }}">body{}</style>',
        '<script type="application/json" id="data">{}</script>',
        '<form method="post" data-confirm="Remove it?">',
    ],
)
def test_the_template_check_lets_allowed_markup_through(markup: str) -> None:
    assert _template_problems(markup) == []
