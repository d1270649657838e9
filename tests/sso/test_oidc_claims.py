"""OIDC claims → Assertion: attribute mapping, groups, verified e-mail, and MFA from amr/acr."""

from __future__ import annotations

import pytest

from apps.sso import oidc
from apps.sso.models import SSOConnection
from apps.sso.types import SSOError
from tests.sso.oidc_provider import CLIENT_ID, CLIENT_SECRET, OIDCProvider, follow_authorize

REDIRECT_URI = "https://bastion.example.com/sso/oidc/callback"


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.DEBUG = False
    settings.SSO_ALLOW_INSECURE_LOOPBACK = True


@pytest.fixture
def provider():
    with OIDCProvider() as running:
        yield running


@pytest.fixture
def connection(db, provider):
    return SSOConnection.objects.create(
        kind=SSOConnection.Kind.OIDC, name="Test IdP", config={"issuer": provider.issuer, "client_id": CLIENT_ID}
    )


@pytest.fixture
def sign_in(provider, connection):
    """Run one whole sign-in against the provider and return the Assertion."""
    discovery = oidc.discover(provider.issuer)

    def run():
        url, blob = oidc.begin(
            connection, redirect_uri=REDIRECT_URI, client_id=CLIENT_ID, scopes=["email"], discovery=discovery
        )
        return oidc.complete(
            connection,
            redirect_uri=REDIRECT_URI,
            params=follow_authorize(url),
            state_blob=blob,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            discovery=discovery,
        )

    return run


# --- MFA -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amr", "expected"),
    [
        (["pwd"], False),
        (["pwd", "mfa"], True),
        (["pwd", "otp"], True),
        (["hwk", "user"], True),
        (["fpt"], True),
        (["pwd", "kba"], False),
        ("mfa", True),  # a lone string instead of a list
        ([], False),
    ],
)
def test_mfa_from_amr(sign_in, provider, amr, expected):
    provider.user["amr"] = amr

    assertion = sign_in()

    assert assertion.mfa_asserted is expected


def test_no_amr_means_no_mfa(sign_in, provider):
    del provider.user["amr"]

    assertion = sign_in()

    assert assertion.mfa_asserted is False
    assert assertion.authn_context == ""


def test_mfa_from_a_configured_acr(sign_in, provider, connection):
    connection.config["mfa_acr_values"] = ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"]
    provider.user["acr"] = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"

    assertion = sign_in()

    assert assertion.mfa_asserted is True
    assert assertion.authn_context == "acr=http://schemas.openid.net/pape/policies/2007/06/multi-factor; amr=pwd"


def test_acr_not_configured_as_mfa_is_not_mfa(sign_in, provider, connection):
    connection.config["mfa_acr_values"] = ["urn:acme:loa:3"]
    provider.user["acr"] = "urn:acme:loa:1"

    assert sign_in().mfa_asserted is False


# --- mapping -------------------------------------------------------------------------------------


def test_default_mapping(sign_in):
    assertion = sign_in()

    assert (assertion.email, assertion.first_name, assertion.last_name) == ("ada@acme.example", "Ada", "Lovelace")
    assert assertion.groups == ("engineering", "admins")


def test_custom_mapping(sign_in, provider, connection):
    connection.attribute_mapping = {
        "email": "preferred_username",
        "first_name": "first",
        "last_name": "last",
        "groups": "roles",
    }
    provider.user.update(
        preferred_username="ada.l@acme.example", first="Augusta", last="King", roles=["platform-admins"]
    )

    assertion = sign_in()

    assert assertion.email == "ada.l@acme.example"
    assert (assertion.first_name, assertion.last_name) == ("Augusta", "King")
    assert assertion.groups == ("platform-admins",)


def test_nested_groups_claim_by_dotted_path(sign_in, provider, connection):
    connection.attribute_mapping = {"groups": "realm_access.roles"}
    provider.user["realm_access"] = {"roles": ["ops", "ops", "audit"]}

    assert sign_in().groups == ("ops", "audit")


def test_claim_names_with_dots_are_looked_up_whole_first(sign_in, provider, connection):
    connection.attribute_mapping = {"groups": "https://acme.example/groups"}
    provider.user["https://acme.example/groups"] = ["finance"]

    assert sign_in().groups == ("finance",)


@pytest.mark.parametrize(("value", "expected"), [("admins", ("admins",)), ([1, "x", None], ("x",)), (None, ())])
def test_odd_groups_claims(sign_in, provider, value, expected):
    provider.user["groups"] = value

    assert sign_in().groups == expected


def test_missing_groups_claim_means_no_groups(sign_in, provider):
    del provider.user["groups"]

    assert sign_in().groups == ()


def test_missing_email_is_refused(sign_in, provider):
    del provider.user["email"]

    with pytest.raises(SSOError) as caught:
        sign_in()
    assert caught.value.code == "claims"


def test_invalid_email_is_refused(sign_in, provider):
    provider.user["email"] = "not an address"

    with pytest.raises(SSOError) as caught:
        sign_in()
    assert caught.value.code == "claims"


@pytest.mark.parametrize("verified", [False, "false"])
def test_unverified_email_is_refused(sign_in, provider, verified):
    provider.user["email_verified"] = verified

    with pytest.raises(SSOError) as caught:
        sign_in()
    assert caught.value.code == "claims"
    assert "not verified" in caught.value.message


def test_absent_email_verified_is_refused(sign_in, provider):
    """#7 item 3: an IdP that does not vouch for the address cannot link accounts by it."""
    del provider.user["email_verified"]

    with pytest.raises(SSOError) as refused:
        sign_in()
    assert refused.value.code == "claims"


def test_absent_email_verified_is_accepted_with_the_connection_override(sign_in, provider, connection):
    connection.config = {**connection.config, "email_verified_not_sent": True}
    del provider.user["email_verified"]

    assert sign_in().email == "ada@acme.example"


def test_false_email_verified_is_refused_even_with_the_override(sign_in, provider, connection):
    connection.config = {**connection.config, "email_verified_not_sent": True}
    provider.user["email_verified"] = "false"

    with pytest.raises(SSOError):
        sign_in()


def test_email_verified_applies_whatever_claim_carries_the_email(sign_in, provider, connection):
    """#7 item 3: mapping the e-mail to another claim (upn) does not escape the check."""
    connection.attribute_mapping = {"email": "upn"}
    provider.user.update(upn="ada@acme.example", email_verified=False)

    with pytest.raises(SSOError):
        sign_in()
    del provider.user["email_verified"]
    with pytest.raises(SSOError):
        sign_in()


def test_attributes_carry_every_claim(sign_in, provider):
    provider.user["department"] = "R&D"

    attributes = sign_in().attributes

    assert attributes["department"] == "R&D"
    assert attributes["sub"] == "00u1abcd"
