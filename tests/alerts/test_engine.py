"""The detection engine on its own: thresholds, the EWMA baseline, minimum volume, warm-up."""

from __future__ import annotations

from decimal import Decimal

from apps.alerts import engine
from apps.alerts.engine import Measurement


def test_threshold_fires_above_and_only_with_volume() -> None:
    assert engine.against_threshold(Measurement(Decimal(11), 5), threshold=Decimal(10), min_volume=5).fire
    assert not engine.against_threshold(
        Measurement(Decimal(10), 5), threshold=Decimal(10), min_volume=5
    ).fire  # not above
    assert not engine.against_threshold(
        Measurement(Decimal(99), 4), threshold=Decimal(10), min_volume=5
    ).fire  # too few


def test_ewma_starts_at_the_first_sample_and_weights_the_newest() -> None:
    assert engine.ewma(None, Decimal(10), Decimal("0.5")) == Decimal(10)
    assert engine.ewma(Decimal(10), Decimal(20), Decimal("0.5")) == Decimal(15)
    assert engine.ewma(Decimal(10), Decimal(20), Decimal("0.25")) == Decimal("12.5")


def test_baseline_waits_for_warmup_then_compares_with_the_factor() -> None:
    m = Measurement(Decimal(50), 50)
    learning = engine.against_baseline(
        m, baseline=Decimal(5), hours=engine.WARMUP_HOURS - 1, factor=Decimal(3), min_volume=1
    )
    assert not learning.fire
    assert "learning" in learning.reason
    fired = engine.against_baseline(m, baseline=Decimal(5), hours=engine.WARMUP_HOURS, factor=Decimal(3), min_volume=1)
    assert fired.fire
    assert fired.expected == Decimal(15)
    assert not engine.against_baseline(
        Measurement(Decimal(14), 50), baseline=Decimal(5), hours=5, factor=Decimal(3), min_volume=1
    ).fire


def test_baseline_is_quiet_under_the_minimum_volume_even_from_zero() -> None:
    assert not engine.against_baseline(
        Measurement(Decimal(3), 3), baseline=Decimal(0), hours=9, factor=Decimal(3), min_volume=4
    ).fire
    assert engine.against_baseline(
        Measurement(Decimal(4), 4), baseline=Decimal(0), hours=9, factor=Decimal(3), min_volume=4
    ).fire
