"""SAML Response validation with real signatures: what is accepted, and each rule that refuses."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from django.utils import timezone
from lxml import etree

from apps.sso.models import SeenAssertion, SSOConnection
from apps.sso.saml import CLOCK_SKEW_SECONDS, process_response
from apps.sso.types import SSOError
from tests.sso import saml_helpers as h


@pytest.fixture
def connection(db: None) -> SSOConnection:
    return h.make_connection()


def refused(connection: SSOConnection, document: object, **kwargs: object) -> SSOError:
    with pytest.raises(SSOError) as info:
        h.post(connection, document, **kwargs)
    return info.value


# --- accepted ---------------------------------------------------------------------------------


def test_signed_assertion_is_accepted_with_attributes_and_groups(connection: SSOConnection) -> None:
    assertion = h.post(connection, h.signed_response(h.spec_for(connection)))

    assert assertion.subject == "ada@acme.example"
    assert assertion.email == "ada@acme.example"
    assert (assertion.first_name, assertion.last_name) == ("Ada", "Lovelace")
    assert assertion.groups == ("engineering", "admins")
    assert assertion.mfa_asserted is False
    assert assertion.authn_context == h.AC_PASSWORD
    assert assertion.attributes["groups"] == ["engineering", "admins"]


@pytest.mark.parametrize(
    "context",
    [
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactorContract",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:X509",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
        "http://schemas.microsoft.com/claims/multipleauthn",
    ],
)
def test_mfa_authn_context_is_reported(connection: SSOConnection, context: str) -> None:
    assertion = h.post(connection, h.signed_response(h.spec_for(connection, authn_context=context)))

    assert assertion.mfa_asserted is True
    assert assertion.authn_context == context


def test_entra_id_claims_and_authnmethodsreferences_mfa(db: None) -> None:
    from apps.sso.saml import ATTRIBUTE_PRESETS

    connection = h.make_connection(attribute_mapping=ATTRIBUTE_PRESETS["entra"])
    claims = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
    spec = h.spec_for(
        connection,
        name_id="A1b2C3persistent",
        name_id_format=h.NAMEID_PERSISTENT,
        attributes={
            claims + "emailaddress": ["grace@acme.example"],
            claims + "givenname": ["Grace"],
            claims + "surname": ["Hopper"],
            "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["3f2b-group-id"],
            "http://schemas.microsoft.com/claims/authnmethodsreferences": [
                "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
                "http://schemas.microsoft.com/claims/multipleauthn",
            ],
        },
    )

    assertion = h.post(connection, h.signed_response(spec))

    assert assertion.subject == "A1b2C3persistent"
    assert (assertion.email, assertion.first_name, assertion.last_name) == ("grace@acme.example", "Grace", "Hopper")
    assert assertion.groups == ("3f2b-group-id",)
    assert assertion.mfa_asserted is True
    assert "multipleauthn" in assertion.authn_context


def test_email_falls_back_to_an_email_like_name_id(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, name_id="bob@acme.example", attributes={})

    assertion = h.post(connection, h.signed_response(spec))

    assert (assertion.subject, assertion.email, assertion.groups) == ("bob@acme.example", "bob@acme.example", ())


def test_mapping_may_name_an_attribute_by_its_friendly_name(db: None) -> None:
    connection = h.make_connection(attribute_mapping={"email": "mail", "groups": "isMemberOf"})
    spec = h.spec_for(
        connection,
        name_id="u-7",
        name_id_format=h.NAMEID_PERSISTENT,
        attributes={
            "urn:oid:0.9.2342.19200300.100.1.3": ["eve@acme.example"],
            "urn:oid:1.3.6.1.4.1.5923.1.5.1.1": ["g"],
        },
        friendly_names={"urn:oid:0.9.2342.19200300.100.1.3": "mail", "urn:oid:1.3.6.1.4.1.5923.1.5.1.1": "isMemberOf"},
    )

    assertion = h.post(connection, h.signed_response(spec))

    assert (assertion.email, assertion.groups) == ("eve@acme.example", ("g",))


def test_no_email_anywhere_is_refused_naming_the_attributes_received(connection: SSOConnection) -> None:
    spec = h.spec_for(
        connection, name_id="u-123", name_id_format=h.NAMEID_PERSISTENT, attributes={"mail": ["x@acme.example"]}
    )

    error = refused(connection, h.signed_response(spec))

    assert error.code == "email"
    assert "mail" in error.message


def test_transient_name_id_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, name_id="_transient123", name_id_format=h.NAMEID_TRANSIENT)

    assert refused(connection, h.signed_response(spec)).code == "subject"


def test_response_signed_only_is_accepted_when_the_connection_allows_it(db: None) -> None:
    connection = h.make_connection(want_assertion_signed=False)
    document = h.signed_response(h.spec_for(connection), sign_assertion=False, sign_response=True)

    assert h.post(connection, document).email == "ada@acme.example"


def test_response_signed_only_is_refused_by_default(connection: SSOConnection) -> None:
    document = h.signed_response(h.spec_for(connection), sign_assertion=False, sign_response=True)

    assert refused(connection, document).code == "signature"


def test_both_signed_is_accepted(connection: SSOConnection) -> None:
    document = h.signed_response(h.spec_for(connection), sign_assertion=True, sign_response=True)

    assert h.post(connection, document).email == "ada@acme.example"


def test_message_signature_required_refuses_an_assertion_only_signature(db: None) -> None:
    connection = h.make_connection(want_message_signed=True)

    assert refused(connection, h.signed_response(h.spec_for(connection))).code == "signature"


def test_any_configured_certificate_verifies_during_a_rollover(db: None) -> None:
    connection = h.make_connection(idp_x509_certs=[h.other_keys().cert_pem, h.idp_keys().cert_base64])

    assert h.post(connection, h.signed_response(h.spec_for(connection))).email == "ada@acme.example"


def test_base64_wrapped_in_lines_is_accepted(connection: SSOConnection) -> None:
    value = h.encode(h.signed_response(h.spec_for(connection)))
    wrapped = "\r\n".join(value[i : i + 76] for i in range(0, len(value), 76))

    assert h.post(connection, wrapped).email == "ada@acme.example"


# --- signatures -------------------------------------------------------------------------------


def test_signature_by_another_key_is_refused(connection: SSOConnection) -> None:
    document = h.signed_response(h.spec_for(connection), keys=h.other_keys())

    assert refused(connection, document).code == "signature"


def test_unsigned_response_is_refused(connection: SSOConnection) -> None:
    document = h.signed_response(h.spec_for(connection), sign_assertion=False)

    assert refused(connection, document).code == "signature"


def test_unsigned_response_is_refused_even_when_no_signature_is_demanded(db: None) -> None:
    connection = h.make_connection(want_assertion_signed=False, want_message_signed=False)
    document = h.signed_response(h.spec_for(connection), sign_assertion=False)

    assert refused(connection, document).code == "signature"


def test_content_changed_after_signing_is_refused(connection: SSOConnection) -> None:
    document = h.signed_response(h.spec_for(connection))
    document.find(".//saml:NameID", h.NSMAP).text = "admin@acme.example"
    document.find(".//saml:AttributeValue", h.NSMAP).text = "admin@acme.example"

    assert refused(connection, document).code == "signature"


def test_sha1_signature_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection)
    assertion = h.build_assertion(spec)
    document = h.build_response(spec, assertion)
    h.sign(assertion, sha1=True)

    error = refused(connection, document)

    assert error.code == "signature"
    assert "deprecated" in error.message


def test_certificate_in_key_info_is_not_trusted(connection: SSOConnection) -> None:
    """Signed by the attacker, who ships their own certificate in ds:KeyInfo: still refused."""
    document = h.signed_response(h.spec_for(connection), keys=h.other_keys())
    x509 = document.find(".//ds:X509Certificate", h.NSMAP)

    assert x509 is not None  # the attacker's certificate is right there
    assert x509.text
    assert refused(connection, document).code == "signature"


# --- time -------------------------------------------------------------------------------------


def test_expired_conditions_are_refused(connection: SSOConnection) -> None:
    # Beyond our 120 s skew although within python3-saml's own 300 s.
    spec = h.spec_for(connection, not_before=-600, not_on_or_after=-(CLOCK_SKEW_SECONDS + 60))

    assert refused(connection, h.signed_response(spec)).code == "expired"


def test_long_expired_conditions_are_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, not_before=-7200, not_on_or_after=-3600, scd_not_on_or_after=300)

    assert refused(connection, h.signed_response(spec)).code == "expired"


def test_expiry_within_the_clock_skew_is_accepted(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, not_before=-600, not_on_or_after=-(CLOCK_SKEW_SECONDS - 60))

    assert h.post(connection, h.signed_response(spec)).email == "ada@acme.example"


def test_expired_subject_confirmation_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, scd_not_on_or_after=-10)

    assert refused(connection, h.signed_response(spec)).code == "expired"


def test_subject_confirmation_without_expiry_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, scd_not_on_or_after=None)

    assert refused(connection, h.signed_response(spec)).code == "malformed"


@pytest.mark.parametrize("offset", [CLOCK_SKEW_SECONDS + 60, 3600])
def test_not_before_in_the_future_is_refused(connection: SSOConnection, offset: int) -> None:
    spec = h.spec_for(connection, not_before=offset, not_on_or_after=offset + 600, scd_not_on_or_after=offset + 600)

    assert refused(connection, h.signed_response(spec)).code == "not_yet_valid"


def test_not_before_within_the_clock_skew_is_accepted(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, not_before=CLOCK_SKEW_SECONDS - 60)

    assert h.post(connection, h.signed_response(spec)).email == "ada@acme.example"


# --- audience, destination, issuer, status ----------------------------------------------------


def test_wrong_audience_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, audience="https://other-sp.example.com/metadata/")

    assert refused(connection, h.signed_response(spec)).code == "audience"


def test_audience_of_another_connection_is_refused(connection: SSOConnection) -> None:
    other = h.make_connection(tenant=connection.tenant)
    document = h.signed_response(h.spec_for(other))

    error = refused(connection, document)

    assert error.code in {"audience", "destination"}


def test_missing_audience_restriction_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection)
    assertion = h.build_assertion(spec)
    conditions = assertion.find("saml:Conditions", h.NSMAP)
    conditions.remove(conditions.find("saml:AudienceRestriction", h.NSMAP))
    document = h.build_response(spec, assertion)
    h.sign(assertion)

    assert refused(connection, document).code == "audience"


@pytest.mark.parametrize(
    "recipient",
    [
        "https://evil.example.com/sso/saml/acs/",
        "",  # missing Recipient
        "{acs}evil",  # python3-saml's own check is a substring test
    ],
)
def test_wrong_recipient_is_refused(connection: SSOConnection, recipient: str) -> None:
    acs = h.spec_for(connection).acs_url
    spec = h.spec_for(connection, recipient=recipient.format(acs=acs))

    assert refused(connection, h.signed_response(spec)).code == "destination"


def test_wrong_destination_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, destination="https://evil.example.com/acs/")

    assert refused(connection, h.signed_response(spec)).code == "destination"


def test_response_posted_to_another_path_is_refused(connection: SSOConnection) -> None:
    document = h.signed_response(h.spec_for(connection))

    assert refused(connection, document, path="/sso/saml/elsewhere/acs/").code == "destination"


def test_wrong_issuer_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, issuer="https://other-idp.example.test/")

    assert refused(connection, h.signed_response(spec)).code == "issuer"


def test_idp_error_status_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, status="urn:oasis:names:tc:SAML:2.0:status:Responder")

    error = refused(connection, h.signed_response(spec))

    assert error.code == "status"
    assert "Responder" in error.message


# --- InResponseTo, unsolicited responses, replay ------------------------------------------------


def test_unsolicited_response_is_refused_by_default(connection: SSOConnection) -> None:
    document = h.signed_response(h.spec_for(connection, in_response_to=None))

    assert refused(connection, document, expected_request_id=None).code == "unsolicited"


def test_unsolicited_response_is_accepted_when_idp_initiated_is_allowed(db: None) -> None:
    connection = h.make_connection(allow_idp_initiated=True)
    document = h.signed_response(h.spec_for(connection, in_response_to=None))

    assert h.post(connection, document, expected_request_id=None).email == "ada@acme.example"


def test_response_without_in_response_to_is_unsolicited_even_when_a_request_is_pending(
    connection: SSOConnection,
) -> None:
    document = h.signed_response(h.spec_for(connection, in_response_to=None))

    assert refused(connection, document).code == "unsolicited"


def test_response_to_a_request_this_session_did_not_send_is_refused(db: None) -> None:
    connection = h.make_connection(allow_idp_initiated=True)
    document = h.signed_response(h.spec_for(connection))  # answers REQUEST_ID

    assert refused(connection, document, expected_request_id=None).code == "in_response_to"


def test_in_response_to_mismatch_is_refused(connection: SSOConnection) -> None:
    document = h.signed_response(h.spec_for(connection, in_response_to="ONELOGIN_someone_elses_request"))

    assert refused(connection, document).code == "in_response_to"


def test_in_response_to_mismatch_inside_the_assertion_is_refused(connection: SSOConnection) -> None:
    spec = h.spec_for(connection)
    assertion = h.build_assertion(h.spec_for(connection, in_response_to="ONELOGIN_other"))
    assertion.set("ID", spec.assertion_id)
    document = h.build_response(spec, assertion)
    h.sign(assertion)

    assert refused(connection, document).code == "in_response_to"


def test_replayed_assertion_is_refused(connection: SSOConnection) -> None:
    document = h.signed_response(h.spec_for(connection))
    h.post(connection, copy.deepcopy(document))

    error = refused(connection, document)

    assert error.code == "replay"


def test_seen_assertion_is_kept_until_it_expires(connection: SSOConnection) -> None:
    spec = h.spec_for(connection, not_on_or_after=600, scd_not_on_or_after=300)
    h.post(connection, h.signed_response(spec))

    row = SeenAssertion.objects.get(connection=connection)
    assert row.assertion_id == spec.assertion_id
    # The later of Conditions and SubjectConfirmationData NotOnOrAfter, plus the skew.
    remaining = row.expires_at - timezone.now()
    assert timedelta(seconds=600 + CLOCK_SKEW_SECONDS - 10) <= remaining <= timedelta(seconds=600 + CLOCK_SKEW_SECONDS)


def test_same_assertion_id_at_another_connection_is_not_a_replay(connection: SSOConnection) -> None:
    other = h.make_connection(tenant=connection.tenant)
    first = h.spec_for(connection)
    h.post(connection, h.signed_response(first))

    assertion = h.post(other, h.signed_response(h.spec_for(other, assertion_id=first.assertion_id)))

    assert assertion.email == "ada@acme.example"


def test_purge_drops_only_expired_replay_rows(connection: SSOConnection) -> None:
    from apps.sso.replay import purge_seen_assertions

    now = timezone.now()
    SeenAssertion.objects.create(connection=connection, assertion_id="_old", expires_at=now - timedelta(seconds=1))
    SeenAssertion.objects.create(connection=connection, assertion_id="_live", expires_at=now + timedelta(minutes=5))

    assert purge_seen_assertions(now=now) == 1
    assert list(SeenAssertion.objects.values_list("assertion_id", flat=True)) == ["_live"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_fails_as_a_replay() -> None:
    """Two ACS requests with the same response at once: the second waits on the unique index, then fails."""
    import threading

    from django.db import connection as db_connection
    from django.db import transaction

    sso = h.make_connection()
    xml = h.to_xml(h.signed_response(h.spec_for(sso)))
    first_inserted = threading.Event()
    second_started = threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                outcome["first"] = h.post(sso, xml)
                first_inserted.set()
                second_started.wait(10)
                # Hold the row uncommitted a little so the second really waits on it.
                threading.Event().wait(0.5)
        finally:
            db_connection.close()

    def second() -> None:
        try:
            first_inserted.wait(10)
            second_started.set()
            outcome["second"] = h.post(sso, xml)
        except SSOError as exc:
            outcome["second"] = exc
        finally:
            db_connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert outcome["first"].email == "ada@acme.example"
    assert isinstance(outcome["second"], SSOError)
    assert outcome["second"].code == "replay"
    assert SeenAssertion.objects.filter(connection=sso).count() == 1


# --- configuration ----------------------------------------------------------------------------


def test_connection_without_certificates_cannot_accept_anything(db: None) -> None:
    connection = h.make_connection(idp_x509_certs=[])

    assert refused(connection, h.signed_response(h.spec_for(connection))).code == "configuration"


def test_post_without_saml_response_is_malformed(connection: SSOConnection) -> None:
    with pytest.raises(SSOError) as info:
        process_response(
            connection,
            base_url=h.BASE_URL,
            post_data={},
            request_host=h.REQUEST_HOST,
            request_path="/",
            https=True,
            expected_request_id=h.REQUEST_ID,
        )

    assert info.value.code == "malformed"


def test_saml_response_round_trips_through_the_helpers(connection: SSOConnection) -> None:
    """Guard for the helpers themselves: serialising and re-parsing keeps the signature valid."""
    document = h.parse(h.to_xml(h.signed_response(h.spec_for(connection))))

    assert etree.QName(document).localname == "Response"
    assert h.post(connection, document).email == "ada@acme.example"
