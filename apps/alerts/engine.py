"""The one detection engine behind both queues (anomaly alerts and fraud cases).

Pure functions, no database. A *measurement* is a value over a window and the
volume behind it (events, attempts, checks). A rule compares it either with a
fixed threshold or with a rolling baseline, an exponentially weighted moving
average (EWMA) of the same value over whole past hours:

    baseline ← α · hour_value + (1 − α) · baseline

Both modes stay quiet below the minimum volume, so three denied checks in a
quiet hour, or one expensive call from a new client, never page anyone. The
baseline mode also stays quiet until it has seen ``WARMUP_HOURS`` whole hours
(a baseline of one sample is noise), and fires only when the value exceeds
``factor`` × baseline. A baseline of 0 (a metric that never moved) makes any
positive value exceed it, so there the minimum volume alone decides.

The same functions judge a tenant's spend (an alert rule) and one client's
cost against its own history (the cost-spike fraud signal).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

WARMUP_HOURS = 3
ZERO = Decimal(0)
# What the value columns hold (20 digits, 6 places). A flood of usage can measure more; the stored
# number is capped there, while the comparison itself uses the real value.
STORED_MAX = Decimal("99999999999999.999999")


@dataclass(frozen=True, slots=True)
class Measurement:
    value: Decimal
    volume: int


@dataclass(frozen=True, slots=True)
class Verdict:
    fire: bool
    expected: Decimal | None  # the threshold or factor × baseline the value was held against
    reason: str  # why it fired or stayed quiet, for the alert's text and the tests


def fit(value: Decimal) -> Decimal:
    """``value`` capped to what the value columns store (see ``STORED_MAX``)."""
    return max(min(value, STORED_MAX), -STORED_MAX)


def ewma(baseline: Decimal | None, value: Decimal, alpha: Decimal) -> Decimal:
    """The next EWMA; the first sample starts the average."""
    if baseline is None:
        return value
    return alpha * value + (1 - alpha) * baseline


def against_threshold(m: Measurement, *, threshold: Decimal, min_volume: int) -> Verdict:
    if m.volume < min_volume:
        return Verdict(False, threshold, f"volume {m.volume} below the minimum {min_volume}")
    if m.value > threshold:
        return Verdict(True, threshold, f"{m.value.normalize():f} above the threshold {threshold.normalize():f}")
    return Verdict(False, threshold, "within the threshold")


def against_baseline(
    m: Measurement, *, baseline: Decimal | None, hours: int, factor: Decimal, min_volume: int
) -> Verdict:
    if m.volume < min_volume:
        return Verdict(False, None, f"volume {m.volume} below the minimum {min_volume}")
    if baseline is None or hours < WARMUP_HOURS:
        return Verdict(False, None, f"baseline still learning ({hours} of {WARMUP_HOURS} hours)")
    limit = factor * max(baseline, ZERO)
    if m.value > limit and m.value > ZERO:
        shown = baseline.quantize(Decimal("0.01"))
        return Verdict(
            True, limit, f"{m.value.normalize():f} is more than {factor.normalize():f}× the baseline {shown}"
        )
    return Verdict(False, limit, "within the baseline")
