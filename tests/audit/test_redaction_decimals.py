"""Card-number masking must not eat ordinary decimals (durations, amounts)."""

from __future__ import annotations

from apps.audit.redaction import mask_text


def test_decimal_fractions_are_not_card_numbers() -> None:
    assert mask_text("succeeded in 0.0123456789013044s") == "succeeded in 0.0123456789013044s"
    assert mask_text("ratio 4242424242424242.5") == "ratio 4242424242424242.5"


def test_card_numbers_at_the_end_of_a_sentence_are_masked() -> None:
    assert mask_text("paid with 4242-4242-4242-4242.") == "paid with [PAN ****4242]."
