"""``{{ invoice.amount_due|money:invoice.currency }}``: Stripe's minor units as a readable amount."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()

# Stripe's zero-decimal currencies: their amounts are whole units, not cents.
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905 — reads as the list Stripe publishes
)


@register.filter
def money(amount: int | None, currency: str = "") -> str:
    if amount is None:
        return "–"
    code = (currency or "").lower()
    value = Decimal(amount) if code in ZERO_DECIMAL else Decimal(amount) / 100
    places = "0" if code in ZERO_DECIMAL else "0.00"
    return f"{value.quantize(Decimal(places)):,} {code.upper()}".strip()


@register.filter
def status_label(status: str | None) -> str:
    """Stripe's ``past_due`` as "Past due"."""
    return (status or "").replace("_", " ").capitalize()
