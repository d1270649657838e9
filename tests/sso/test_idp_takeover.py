"""An admin with sso.manage cannot sign in as the tenant's people by swapping the IdP (issue #7, item 3).

The attack: Acme's admin edits the enabled connection to trust their own IdP
(their certificate, same entity ID so old links would still match), and that
IdP asserts ``owner@acme.example``. Every step is refused or noticed: the edit
returns the connection to draft and is e-mailed to the Owners; old identity
links do not carry over to the new trust material; and an existing account
with its own way in (password, MFA, other IdP) or an Owner is not linked on the
strength of an e-mail address without its owner confirming.
"""

from __future__ import annotations

import pytest

from apps.sso import services
from apps.sso.models import ExternalIdentity, SSOConnection
from tests.factories import MembershipFactory, UserFactory
from tests.sso import saml_helpers as h
from tests.sso.test_flow_support import (
    attributes,
    events,
    https_client,
    post_acs,
    saml_connection,
    signed_in_user_id,
    start_saml,
    verify_domain,
)

pytestmark = pytest.mark.django_db

OWNER = "owner@acme.example"


@pytest.fixture
def acme_sso(cast):
    verify_domain(cast.acme, "acme.example")
    connection = saml_connection(cast.acme)
    # The Owner signs in through the IdP already: their identity is linked.
    ExternalIdentity.objects.create(
        connection=connection, subject=OWNER, user=cast.owner, **services.identity_link_values(connection)
    )
    return connection


def _sign_in_as(client, connection, email: str, *, keys=None):
    key, request_id = start_saml(client, connection)
    spec = h.spec_for(connection, in_response_to=request_id, name_id=email, attributes=attributes(email))
    return post_acs(client, connection, h.encode(h.signed_response(spec, keys=keys)), key)


def _swap_certificate(connection, admin) -> SSOConnection:
    """What the attacker submits: the same entity ID and SSO URL, their own signing certificate."""
    return services.connection_update(
        connection=connection,
        name=connection.name,
        saml=services.SAMLSettings(
            source="manual",
            entity_id=h.IDP_ENTITY_ID,
            sso_url=h.IDP_SSO_URL,
            certificate=h.other_keys().cert_pem,
        ),
        attribute_mapping=connection.attribute_mapping,
        actor=admin,
    )


def test_changing_trust_material_returns_an_enabled_connection_to_draft(
    cast, acme_sso, django_capture_on_commit_callbacks, mailoutbox
) -> None:
    MembershipFactory(tenant=cast.acme, user=UserFactory(email="second-owner@acme.example"), role="owner")

    with django_capture_on_commit_callbacks(execute=True):
        updated = _swap_certificate(acme_sso, cast.admin)

    assert updated.status == SSOConnection.Status.DRAFT
    assert "tested_at" not in updated.config
    assert updated.trust_epoch == acme_sso.trust_epoch + 1
    with pytest.raises(services.SSOInputError):
        services.connection_set_status(connection=updated, enabled=True, actor=cast.admin)
    (event,) = events("sso.connection_trust_change", tenant=cast.acme)
    assert event.metadata["severity"] == "high"
    assert event.metadata["changed"] == ["idp_x509_certs"]
    assert sorted(m.to[0] for m in mailoutbox) == ["owner@acme.example", "second-owner@acme.example"]
    assert "admin@acme.example" not in {m.to[0] for m in mailoutbox}  # Owners, not the admin who did it


def test_no_sign_in_through_the_connection_until_tested_again(cast, acme_sso) -> None:
    _swap_certificate(acme_sso, cast.admin)
    client = https_client()

    response = client.get(f"/sso/start/{acme_sso.public_id}/")

    assert response.status_code == 404


def test_swapped_idp_does_not_inherit_the_owners_link(cast, acme_sso) -> None:
    """Even after the attacker tests and enables their IdP, its word about the Owner is not enough."""
    updated = _swap_certificate(acme_sso, cast.admin)
    updated.status = SSOConnection.Status.ENABLED  # as if tested (with the attacker's IdP) and enabled
    updated.save()
    client = https_client()

    response = _sign_in_as(client, updated, OWNER, keys=h.other_keys())

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert events("auth.sign_in", tenant=cast.acme)[-1].metadata["code"] == "link_confirm"


def test_unseen_identity_is_not_linked_to_an_account_with_a_password(cast, acme_sso) -> None:
    """The admin's own IdP, correctly configured, asserts the Owner's address under a new subject."""
    client = https_client()

    response = _sign_in_as(client, acme_sso, "member@acme.example")  # has a password, never linked

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert not ExternalIdentity.objects.filter(user=cast.member).exists()


def test_sso_only_owner_is_not_linked_without_confirmation(cast, acme_sso) -> None:
    ExternalIdentity.objects.filter(user=cast.owner).delete()
    cast.owner.set_unusable_password()
    cast.owner.save()
    client = https_client()

    response = _sign_in_as(client, acme_sso, OWNER)

    assert response.status_code == 403
    assert signed_in_user_id(client) is None


def test_existing_link_with_unchanged_trust_still_signs_in(cast, acme_sso) -> None:
    client = https_client()

    response = _sign_in_as(client, acme_sso, OWNER)

    assert response.status_code == 302
    assert signed_in_user_id(client) == str(cast.owner.pk)


def test_renaming_keeps_the_connection_enabled_and_the_links(cast, acme_sso) -> None:
    config = acme_sso.config
    updated = services.connection_update(
        connection=acme_sso,
        name="Okta (production)",
        saml=services.SAMLSettings(
            source="manual",
            entity_id=config["idp_entity_id"],
            sso_url=config["idp_sso_url"],
            slo_url=config["idp_slo_url"],
            certificate=config["idp_x509_certs"][0],
        ),
        attribute_mapping=acme_sso.attribute_mapping,
        actor=cast.admin,
    )

    assert updated.status == SSOConnection.Status.ENABLED
    assert updated.trust_epoch == acme_sso.trust_epoch
    assert events("sso.connection_trust_change", tenant=cast.acme) == []


def test_oidc_trust_material_includes_client_id_issuer_and_jwks() -> None:
    from apps.sso.services.connections import _trust_changes

    before = {"issuer": "https://a", "client_id": "x", "discovery": {"jwks_uri": "https://a/jwks"}, "scopes": ["o"]}

    assert _trust_changes("oidc", before, {**before, "client_id": "y"}) == ["client_id"]
    assert _trust_changes("oidc", before, {**before, "discovery": {"jwks_uri": "https://evil/jwks"}}) == [
        "discovery.jwks_uri"
    ]
    assert _trust_changes("oidc", before, {**before, "scopes": ["o", "groups"]}) == []
    saml = {"idp_entity_id": "e", "idp_sso_url": "s", "idp_x509_certs": ["c"], "metadata_url": ""}
    assert _trust_changes("saml", saml, {**saml, "metadata_url": "https://evil/md"}) == ["metadata_url"]
