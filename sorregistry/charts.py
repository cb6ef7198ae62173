"""Charts drawn on the server as SVG: bars (grouped or stacked, upright or lying) and lines.

A chart is read in a second and needs no script: no JavaScript library, no CDN, nothing
the Content-Security-Policy must allow (colours are SVG presentation attributes, not
styles). Each chart has a title (``<title>`` of the ``role="img"`` SVG, named by
``aria-labelledby``), labelled axes with round ticks, a legend when it has more than one
series, and a ``<title>`` tooltip on every bar and point giving its exact value. The
numbers themselves are the caller's: the page shows them beside the chart as a table.
Texts arrive translated; everything written into the SVG is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count

from markupsafe import Markup, escape

__all__ = ["PALETTE", "Series", "bar_chart", "hbar_chart", "line_chart", "nice_ticks"]

# Colour-blind-safe (Okabe-Ito), dark enough on white for text-free marks.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
WIDTH, HEIGHT = 520, 270
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 40, 56
_ids = count(1)


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | None]
    colour: str | None = None


def nice_ticks(top: float, wanted: int = 5) -> list[float]:
    """Round ticks from 0 to at least *top*: steps of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / wanted
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(step, 1.0)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def _open(title: str, chart_id: str | None, height: int = HEIGHT) -> list[str]:
    chart_id = chart_id or f"chart-{next(_ids)}"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title" id="{escape(chart_id)}" '
        f'font-family="sans-serif" font-size="12">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14" '
        f'font-weight="bold" fill="#222">{escape(title)}</text>',
    ]


def _colours(series: Sequence[Series]) -> list[str]:
    return [s.colour or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]


def _legend(series: Sequence[Series], y: float) -> list[str]:
    if len(series) < 2:
        return []
    parts, x = [], float(LEFT)
    for s, colour in zip(series, _colours(series), strict=True):
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{y}" fill="#222">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    return parts


def _y_axis(ticks: list[float], label: str, plot_height: float) -> list[str]:
    parts = []
    for tick in ticks:
        y = TOP + plot_height - tick / ticks[-1] * plot_height
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#ddd"/><text x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end" fill="#444">{_number(tick)}</text>')
    parts.append(f'<text transform="translate(14 {TOP + plot_height / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle" fill="#444">{escape(label)}</text>')
    return parts


def _x_labels(labels: Sequence[str], slot: float, y: float) -> list[str]:
    every = max(1, math.ceil(len(labels) * 60 / (WIDTH - LEFT - RIGHT)))
    return [f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{y}" text-anchor="middle" '
            f'fill="#444">{escape(label)}</text>'
            for i, label in enumerate(labels) if i % every == 0]


def _top(series: Sequence[Series], stacked: bool) -> float:
    if stacked:
        return max((sum(s.values[i] or 0 for s in series)
                    for i in range(len(series[0].values))), default=0)
    return max((v or 0 for s in series for v in s.values), default=0)


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], *,
              y_label: str, x_label: str = "", stacked: bool = False,
              chart_id: str | None = None) -> Markup:
    """Upright bars, one slot per label: side by side per series, or stacked."""
    plot_height = HEIGHT - TOP - BOTTOM
    ticks = nice_ticks(_top(series, stacked))
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    parts = _open(title, chart_id) + _y_axis(ticks, y_label, plot_height)
    colours = _colours(series)
    width = slot * 0.8 / (1 if stacked else len(series))
    for i, label in enumerate(labels):
        base = 0.0
        for j, (s, colour) in enumerate(zip(series, colours, strict=True)):
            value = s.values[i] or 0
            height = value / ticks[-1] * plot_height
            x = LEFT + slot * (i + 0.1) + (0 if stacked else j * width)
            y = TOP + plot_height - base - height
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                         f'height="{height:.1f}" fill="{colour}"><title>{escape(label)}: '
                         f'{escape(s.name)} {_number(value)}</title></rect>')
            base += height if stacked else 0
    parts += _x_labels(labels, slot, TOP + plot_height + 16)
    parts.append(f'<text x="{LEFT + (WIDTH - LEFT - RIGHT) / 2}" y="{HEIGHT - 22}" '
                 f'text-anchor="middle" fill="#444">{escape(x_label)}</text>')
    parts += _legend(series, HEIGHT - 6)
    return Markup("".join(parts) + "</svg>")


def hbar_chart(title: str, labels: Sequence[str], series: Sequence[Series], *,
               x_label: str, chart_id: str | None = None) -> Markup:
    """Lying bars, stacked, one row per label (for long names such as municipalities)."""
    row = 20
    height = TOP + row * max(1, len(labels)) + 48
    left = 130
    ticks = nice_ticks(_top(series, True))
    span = WIDTH - left - RIGHT
    parts = _open(title, chart_id, height)
    for tick in ticks:
        x = left + tick / ticks[-1] * span
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - 44}" '
                     f'stroke="#ddd"/><text x="{x:.1f}" y="{height - 30}" '
                     f'text-anchor="middle" fill="#444">{_number(tick)}</text>')
    colours = _colours(series)
    for i, label in enumerate(labels):
        y = TOP + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" '
                     f'fill="#222">{escape(label[:24])}</text>')
        base = 0.0
        for s, colour in zip(series, colours, strict=True):
            value = s.values[i] or 0
            width = value / ticks[-1] * span
            parts.append(f'<rect x="{left + base:.1f}" y="{y + 3}" width="{width:.1f}" '
                         f'height="{row - 6}" fill="{colour}"><title>{escape(label)}: '
                         f'{escape(s.name)} {_number(value)}</title></rect>')
            base += width
    parts.append(f'<text x="{left + span / 2}" y="{height - 14}" text-anchor="middle" '
                 f'fill="#444">{escape(x_label)}</text>')
    parts += _legend(series, height - 2)
    return Markup("".join(parts) + "</svg>")


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], *,
               y_label: str, x_label: str = "", chart_id: str | None = None) -> Markup:
    """Lines through one point per label; a missing value (None) breaks the line."""
    plot_height = HEIGHT - TOP - BOTTOM
    ticks = nice_ticks(_top(series, False))
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    parts = _open(title, chart_id) + _y_axis(ticks, y_label, plot_height)
    for s, colour in zip(series, _colours(series), strict=True):
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x = LEFT + slot * (i + 0.5)
            y = TOP + plot_height - value / ticks[-1] * plot_height
            runs[-1].append(f"{x:.1f},{y:.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                         f'<title>{escape(labels[i])}: {escape(s.name)} {_number(value)}'
                         f'</title></circle>')
        parts += [f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                  f'stroke-width="2"/>' for run in runs if len(run) > 1]
    parts += _x_labels(labels, slot, TOP + plot_height + 16)
    parts.append(f'<text x="{LEFT + (WIDTH - LEFT - RIGHT) / 2}" y="{HEIGHT - 22}" '
                 f'text-anchor="middle" fill="#444">{escape(x_label)}</text>')
    parts += _legend(series, HEIGHT - 6)
    return Markup("".join(parts) + "</svg>")
