"""Stacked bar charts as plain geometry for a server-rendered SVG (no script, no inline style: the CSP holds).

The template draws ``<rect>`` elements from these numbers with ``fill`` presentation
attributes (not ``style``), so the chart needs neither JavaScript nor a nonce, and
reads the same with scripts off. Each bar segment carries a ``<title>`` for hover.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from apps.billing.usage_selectors import Series

# Colour-blind-safe palette (Okabe–Ito), then grey for "Other".
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHER_COLOUR = "#9CA3AF"
WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 30


@dataclass(frozen=True, slots=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class LegendEntry:
    label: str
    fill: str
    total: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: int
    height: int
    segments: list[Segment]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: list[LegendEntry]
    plot_left: int
    plot_right: int
    plot_bottom: int
    empty: bool


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def stacked(
    *,
    title: str,
    days: Sequence[date],
    series: Sequence[Series],
    value: Callable[[Series, int], float],
    fmt: Callable[[float], str],
    top: int = len(PALETTE),
) -> Chart:
    """Bars per day, one segment per series (the ``top`` largest; the rest summed as "Other")."""
    shown = list(series[:top])
    rest = list(series[top:])
    groups: list[tuple[str, str, Callable[[int], float]]] = [
        (s.label, PALETTE[i], (lambda i_day, s=s: value(s, i_day))) for i, s in enumerate(shown)
    ]
    if rest:
        groups.append(("Other", OTHER_COLOUR, lambda i_day: sum(value(s, i_day) for s in rest)))
    totals = [sum(get(i) for _, _, get in groups) for i in range(len(days))]
    ceiling = _nice_max(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(days))
    bar = max(1.0, slot * 0.72)
    segments = []
    for i, day in enumerate(days):
        y = float(TOP + plot_h)
        for label, fill, get in groups:
            amount = get(i)
            if amount <= 0:
                continue
            height = plot_h * amount / ceiling
            y -= height
            segments.append(
                Segment(
                    x=round(LEFT + i * slot + (slot - bar) / 2, 2),
                    y=round(y, 2),
                    width=round(bar, 2),
                    height=round(height, 2),
                    fill=fill,
                    title=f"{day:%d %b}: {label} {fmt(amount)}",
                )
            )
    y_ticks = [Tick(round(TOP + plot_h * (1 - f), 2), fmt(ceiling * f)) for f in (0, 0.5, 1)]
    every = max(1, math.ceil(len(days) / 8))
    x_ticks = [
        Tick(round(LEFT + i * slot + slot / 2, 2), f"{day:%d %b}") for i, day in enumerate(days) if i % every == 0
    ]
    legend = [LegendEntry(label, fill, fmt(sum(get(i) for i in range(len(days))))) for label, fill, get in groups]
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        segments=segments,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        legend=legend,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_bottom=TOP + plot_h,
        empty=not segments,
    )


def money_format(currency: str) -> Callable[[float], str]:
    def fmt(amount: float) -> str:
        return f"{Decimal(str(amount)).quantize(Decimal('0.01')):,} {currency}"

    return fmt


def tokens_format(amount: float) -> str:
    if amount >= 1_000_000:
        return f"{amount / 1_000_000:.1f}M"
    if amount >= 10_000:
        return f"{amount / 1_000:.0f}k"
    return f"{int(amount):,}"
