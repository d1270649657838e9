"""Secrets and payment data are masked before an audit event is stored."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.audit.redaction import MASK, mask_mapping, mask_text
from apps.audit.services import Actor, record
from apps.core import context

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abcDEF123456789xyz", "abcDEF123456789xyz"),
        ("called with sk_live_51HxYzAbCdEfGh12345678", "sk_live_51HxYzAbCdEfGh12345678"),
        ("test key rk_test_ABCDEFGH12345678 leaked", "rk_test_ABCDEFGH12345678"),
        ("webhook secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        (f"token was {JWT} ok", JWT),
        ("AWS AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
        ("url?api_key=s3cr3tvalue&x=1", "s3cr3tvalue"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
    ],
)
def test_mask_text_hides_credentials(text, secret):
    masked = mask_text(text)
    assert secret not in masked
    assert MASK in masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4242 4242 4242 4242 charged", "card [PAN ****4242] charged"),
        ("card 4000-0566-5566-5556 charged", "card [PAN ****5556] charged"),
        ("amex 378282246310005", "amex [PAN ****0005]"),
    ],
)
def test_card_numbers_passing_luhn_keep_last_four(text, expected):
    assert mask_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4242424242424241 (fails Luhn)",
        "phone +44 20 7946 0958",
        "invoice 2024-0001-0002",
        "1234567890123",  # 13 digits, not Luhn-valid
        "uuid 550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_numbers_that_are_not_cards_are_untouched(text):
    assert mask_text(text) == text


def test_secret_keys_are_masked_at_any_depth():
    masked = mask_mapping(
        {
            "user": "alice",
            "password": "hunter2",
            "nested": {"config": {"client_secret": "abc", "db_password": "x", "keep": "visible"}},
            "list": [{"api_key": "k1"}, {"Authorization": "Basic Zm9vOmJhcg=="}, "plain"],
            "card_number": "4242424242424242",
            "empty_token": "",
        }
    )
    assert masked["user"] == "alice"
    assert masked["password"] == MASK
    assert masked["nested"]["config"] == {"client_secret": MASK, "db_password": MASK, "keep": "visible"}
    assert masked["list"] == [{"api_key": MASK}, {"Authorization": MASK}, "plain"]
    assert masked["card_number"] == MASK
    assert masked["empty_token"] == ""


def test_record_masks_metadata_actor_and_user_agent_before_storing(cast):
    with context.bind(user_agent="curl/8 Bearer abcdefghijklmnop"):
        event_id = record(
            "apiclient.create",
            tenant=cast.acme,
            actor=Actor.anonymous("sk_live_ABCDEFGH12345678"),
            metadata={
                "note": "paid with 4242 4242 4242 4242, ref 4242424242424241",
                "headers": {"Authorization": "Bearer abcdefghijklmnop"},
                "deep": {"a": {"b": {"password": "p@ss", "jwt": JWT}}},
                "webhook": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            },
        )
    event = AuditEvent.objects.get(pk=event_id)
    stored = str(event.metadata) + event.actor_display + event.user_agent
    for secret in ("abcdefghijklmnop", "sk_live_ABCDEFGH", "p@ss", JWT, "whsec_MfKQ", "4242 4242 4242 4242"):
        assert secret not in stored
    assert event.metadata["note"] == "paid with [PAN ****4242], ref 4242424242424241"
    assert event.metadata["headers"]["Authorization"] == MASK
    assert event.metadata["deep"]["a"]["b"]["password"] == MASK
    assert event.metadata["deep"]["a"]["b"]["jwt"] == MASK


@pytest.mark.parametrize("text", ["x" * 50_000, "a-" * 25_000, "token " * 8_000, "4" * 50_000])
def test_masking_long_text_stays_linear(text):
    # Regression: an unanchored key pattern made 20 kB of letters take 15 s.
    import time

    started = time.perf_counter()
    mask_text(text)
    assert time.perf_counter() - started < 1.0
