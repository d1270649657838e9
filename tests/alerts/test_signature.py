"""The signature recipe: what the README documents verifies Bastion's header, and nothing forged or stale."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from apps.alerts import crypto

BODY = b'{"id":"e1","type":"alert.opened"}'


def readme_verify(raw_body: bytes, header: str, secret: str) -> bool:
    """Copied from the webhooks page / README: a receiver's own implementation, not Bastion's."""
    items = [part.split("=", 1) for part in header.split(",") if "=" in part]
    t = next((v for k, v in items if k == "t"), "")
    if not t.isdigit() or abs(time.time() - int(t)) > 300:
        return False
    expected = hmac.new(secret.encode(), t.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in items if k == "v1")


@pytest.mark.parametrize("verify", [crypto.verify, readme_verify])
def test_recipe_accepts_bastions_signature_and_refuses_tampering(verify) -> None:
    header = crypto.sign(BODY, ["whsec_new"])
    assert verify(BODY, header, "whsec_new")
    assert not verify(BODY + b" ", header, "whsec_new")  # tampered body
    assert not verify(BODY, header, "whsec_other")  # wrong secret
    assert not verify(BODY, crypto.sign(BODY, ["whsec_new"], timestamp=int(time.time()) - 301), "whsec_new")  # stale
    forged = header.replace(header.split("t=")[1].split(",")[0], str(int(time.time()) + 5))
    assert not verify(BODY, forged, "whsec_new")  # a fresh timestamp on an old signature
    assert not verify(BODY, "v1=" + header.split("v1=")[1], "whsec_new")  # no timestamp
    assert not verify(BODY, "", "whsec_new")


def test_both_secrets_sign_during_a_rotation() -> None:
    header = crypto.sign(BODY, ["whsec_new", "whsec_old"])
    assert header.count("v1=") == 2
    assert readme_verify(BODY, header, "whsec_new")
    assert readme_verify(BODY, header, "whsec_old")


def test_secrets_round_trip_encrypted_and_fail_clearly_under_another_key(settings) -> None:
    token = crypto.encrypt("whsec_abc")
    assert "whsec_abc" not in token
    assert crypto.decrypt(token) == "whsec_abc"
    settings.SECRET_KEY = "another-key-entirely-0123456789-0123456789-0123456789"
    with pytest.raises(crypto.SecretUnreadableError):
        crypto.decrypt(token)
