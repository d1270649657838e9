"""Single logout (issue #7, item 17): a cross-site GET signs nobody out; only the IdP's signed message does.

The attacker's page embeds ``<img src="https://bastion…/sso/saml/<id>/sls/">``
(or a forged, unsigned or wrongly signed LogoutRequest); the victim's session
must survive. A LogoutRequest signed by the IdP's real key (HTTP-Redirect
binding, verified by python3-saml) ends it; so does our own CSRF-checked POST.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.sso import saml_helpers as h
from tests.sso.test_flow_support import https_client, saml_connection, saml_sign_in, signed_in_user_id, verify_domain

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_sso(cast):
    verify_domain(cast.acme, "acme.example")
    return saml_connection(cast.acme)


@pytest.fixture
def signed_in(acme_sso):
    client = https_client()
    assert saml_sign_in(client, acme_sso).status_code == 302
    assert signed_in_user_id(client) is not None
    return client


def _sls(connection) -> str:
    return f"/sso/saml/{connection.public_id}/sls/"


def test_bare_cross_site_get_does_not_sign_out(acme_sso, signed_in) -> None:
    response = signed_in.get(_sls(acme_sso))

    assert response.status_code == 400
    assert signed_in_user_id(signed_in) is not None


def test_unsigned_logout_request_does_not_sign_out(acme_sso, signed_in) -> None:
    query = h.redirect_binding_query(h.logout_request_xml(acme_sso), signed=False)

    assert signed_in.get(_sls(acme_sso), query).status_code == 400
    assert signed_in_user_id(signed_in) is not None


def test_logout_request_signed_by_another_key_does_not_sign_out(acme_sso, signed_in) -> None:
    query = h.redirect_binding_query(h.logout_request_xml(acme_sso), keys=h.other_keys())

    assert signed_in.get(_sls(acme_sso), query).status_code == 400
    assert signed_in_user_id(signed_in) is not None


def test_logout_request_from_another_issuer_does_not_sign_out(acme_sso, signed_in) -> None:
    query = h.redirect_binding_query(h.logout_request_xml(acme_sso, issuer="https://evil.example/"))

    assert signed_in.get(_sls(acme_sso), query).status_code == 400
    assert signed_in_user_id(signed_in) is not None


def test_post_without_csrf_token_does_not_sign_out(acme_sso, signed_in) -> None:
    signed_in.handler.enforce_csrf_checks = True

    assert signed_in.post(_sls(acme_sso)).status_code == 403
    assert signed_in_user_id(signed_in) is not None


def test_signed_logout_request_from_the_idp_signs_out_and_answers_the_idp(acme_sso, signed_in) -> None:
    query = h.redirect_binding_query(h.logout_request_xml(acme_sso))

    response = signed_in.get(_sls(acme_sso), query)

    assert response.status_code == 302
    assert response["Location"].startswith(h.IDP_SLO_URL + "?SAMLResponse=")
    assert signed_in_user_id(signed_in) is None


def test_own_sign_out_form_with_csrf_signs_out(acme_sso, signed_in) -> None:
    signed_in.handler.enforce_csrf_checks = True
    signed_in.get("/accounts/login/")  # any page: sets the CSRF cookie
    token = signed_in.cookies["csrftoken"].value

    response = signed_in.post(
        _sls(acme_sso), {"csrfmiddlewaretoken": token}, HTTP_REFERER="https://bastion.example.com/t/acme/"
    )

    assert response.status_code == 302
    assert signed_in_user_id(signed_in) is None


def test_signed_logout_request_ends_only_sessions_of_that_connection(cast, acme_sso) -> None:
    other: Client = https_client(cast.member)  # not signed in through this connection
    query = h.redirect_binding_query(h.logout_request_xml(acme_sso, name_id="member@acme.example"))

    other.get(_sls(acme_sso), query)

    assert signed_in_user_id(other) == str(cast.member.pk)
