"""Second-factor secrets are encrypted in allauth's Authenticator rows; a database dump yields none."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.core.cache import cache

from tests.accounts.helpers import MFA_STAGE, enrol_totp, password_sign_in, totp_code
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear()
    yield
    cache.clear()


def test_totp_secret_is_not_stored_in_clear_and_still_signs_in(cast, client):
    secret = enrol_totp(cast.owner)
    stored = Authenticator.objects.get(user=cast.owner, type=Authenticator.Type.TOTP).data["secret"]
    assert secret not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token

    assert password_sign_in(client, cast.owner.email, PASSWORD)["Location"] == MFA_STAGE
    response = client.post(MFA_STAGE, {"code": totp_code(secret)})
    assert response.status_code == 302
    assert response["Location"] != MFA_STAGE


def test_recovery_code_seed_is_encrypted(cast):
    enrol_totp(cast.owner)
    codes = RecoveryCodes.activate(cast.owner)
    stored = Authenticator.objects.get(user=cast.owner, type=Authenticator.Type.RECOVERY_CODES).data
    assert stored["seed"].startswith("gAAAAA")
    assert codes.validate_code(codes.generate_codes()[0])


def test_a_secret_stored_before_encryption_still_works(cast, client):
    secret = enrol_totp(cast.owner)
    row = Authenticator.objects.get(user=cast.owner, type=Authenticator.Type.TOTP)
    row.data = {**row.data, "secret": secret}  # a row written in clear by an earlier version
    row.save(update_fields=["data"])

    password_sign_in(client, cast.owner.email, PASSWORD)
    assert client.post(MFA_STAGE, {"code": totp_code(secret)})["Location"] != MFA_STAGE


def test_a_secret_no_key_opens_refuses_every_code_without_a_500(cast, client, caplog):
    secret = enrol_totp(cast.owner)
    row = Authenticator.objects.get(user=cast.owner, type=Authenticator.Type.TOTP)
    row.data = {**row.data, "secret": row.data["secret"][:-8] + "AAAAAAAA"}  # altered token
    row.save(update_fields=["data"])

    password_sign_in(client, cast.owner.email, PASSWORD)
    response = client.post(MFA_STAGE, {"code": totp_code(secret)})
    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session
    assert "cannot be decrypted" in caplog.text
    assert secret not in caplog.text
