"""Line charts of resource samples as inline SVG, built on the server.

No chart library and no script: a page with charts works under the platform's strict
Content-Security-Policy and costs the browser nothing. Plain Python without Flask, so the
output can be tested on its own.

The SVG draws with ``currentColor`` (it takes the text colour of the theme, light or dark)
and presentation attributes only; there is no ``style`` anywhere. Every text in it is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from statistics import median

from markupsafe import Markup, escape

#: At most this many points per line: a day of samples every 30 s would be 2,880.
DEFAULT_BUCKETS = 240
#: The drawing's own units; it is scaled to the width of its box (about 300 to 500 pixels in
#: the pages' grids, where the 11-unit labels stay legible).
WIDTH, HEIGHT = 320, 140
#: Room for the axis labels ("1000 MB" on the left).
LEFT, RIGHT, TOP, BOTTOM = 54, 8, 10, 22


@dataclass(frozen=True)
class Chart:
    """One chart and the figures shown beside it."""

    svg: Markup
    latest: float | None
    peak: float
    average: float
    #: Points drawn (after averaging samples into buckets).
    points: int


def nice_ceiling(value: float, floor: float = 1.0) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value``."""
    value = max(value, floor)
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10.0 * power  # pragma: no cover - the loop always returns


def format_value(value: float, unit: str) -> str:
    """``12.5 %``, ``312 MB``: one decimal below 100, none above."""
    text = f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text} {unit}" if unit else text


def _buckets(samples: Sequence[tuple[datetime, float | None]], start: datetime, end: datetime,
             count: int) -> list[tuple[datetime, float | None]]:
    """Samples averaged per time slot, oldest first. A slot holding only ``None`` (the service
    was stopped) stays ``None``, so the line breaks there; empty slots are left out."""
    span = (end - start).total_seconds()
    slots: dict[int, list[float | None]] = {}
    for when, value in samples:
        offset = (when - start).total_seconds()
        if offset < 0 or offset > span:
            continue
        slots.setdefault(min(count - 1, int(offset / span * count)), []).append(value)
    found: list[tuple[datetime, float | None]] = []
    for index in sorted(slots):
        numbers = [value for value in slots[index] if value is not None]
        middle = start + timedelta(seconds=(index + 0.5) * span / count)
        found.append((middle, sum(numbers) / len(numbers) if numbers else None))
    return found


def _longest_step(samples: Sequence[tuple[datetime, float | None]], slot_seconds: float) -> float:
    """How far apart two points may be and still be joined: beyond it Helm was not sampling
    (it was down), and a straight line would claim values nobody measured."""
    times = sorted(when for when, _value in samples)
    steps = [(later - earlier).total_seconds() for earlier, later in pairwise(times)]
    usual = median(steps) if steps else 0.0
    return max(3 * usual, 2.5 * slot_seconds)


def _segments(points: list[tuple[datetime, float | None]],
              longest_step: float) -> list[list[tuple[datetime, float]]]:
    segments: list[list[tuple[datetime, float]]] = []
    current: list[tuple[datetime, float]] = []
    for when, value in points:
        if value is None or (current
                             and (when - current[-1][0]).total_seconds() > longest_step):
            if current:
                segments.append(current)
            current = []
        if value is not None:
            current.append((when, value))
    if current:
        segments.append(current)
    return segments


def line_chart(samples: Sequence[tuple[datetime, float | None]], *, start: datetime,
               end: datetime, label: str, unit: str, floor: float = 1.0,
               buckets: int = DEFAULT_BUCKETS) -> Chart | None:
    """A chart of ``(time, value)`` samples between ``start`` and ``end``; ``None`` when no
    sample in that window has a value (the page shows an empty state instead).

    :param label: what is drawn, e.g. ``"CPU % of core"`` (escaped; the chart's accessible name).
    :param unit: printed after the figures on the axis (``%``, ``MB``).
    :param floor: the smallest top of the scale, so an idle service is not drawn as a busy one.
    """
    if end <= start:
        raise ValueError("end must be after start")
    inside = [(when, value) for when, value in samples if start <= when <= end]
    values = [value for _when, value in inside if value is not None]
    if not values:
        return None
    slot_seconds = (end - start).total_seconds() / buckets
    points = _buckets(inside, start, end, buckets)
    segments = _segments(points, _longest_step(inside, slot_seconds))
    latest = next((value for _when, value in sorted(inside, key=lambda s: s[0], reverse=True)),
                  None)
    peak = max(values)
    top = nice_ceiling(peak, floor)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = (end - start).total_seconds()

    def x(when: datetime) -> float:
        return LEFT + (when - start).total_seconds() / span * plot_width

    def y(value: float) -> float:
        return TOP + plot_height - min(value, top) / top * plot_height

    summary = (f"{label}: latest {format_value(latest, unit) if latest is not None else 'none'}"
               f", peak {format_value(peak, unit)}")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="{escape(summary)}" data-chart="{escape(label)}" '
        f'data-points="{sum(len(segment) for segment in segments)}" '
        f'data-segments="{len(segments)}">',
        f"<title>{escape(summary)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        level = TOP + plot_height * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{level:.1f}" '
                     f'y2="{level:.1f}" stroke="currentColor" stroke-opacity="0.15"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="currentColor">'
                     f"{escape(format_value(top * fraction, unit))}</text>")
    # Over half a day the same hour comes round twice: say which day.
    time_format = "%a %H:%M" if span >= 12 * 3600 else "%H:%M"
    for fraction, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        when = start + (end - start) * fraction
        parts.append(f'<text x="{LEFT + plot_width * fraction:.1f}" y="{HEIGHT - 6}" '
                     f'text-anchor="{anchor}" font-size="11" fill="currentColor" '
                     f'fill-opacity="0.7">{when.strftime(time_format)}</text>')
    for segment in segments:
        if len(segment) == 1:
            when, value = segment[0]
            parts.append(f'<circle cx="{x(when):.1f}" cy="{y(value):.1f}" r="2.5" '
                         f'fill="currentColor"/>')
        else:
            coordinates = " ".join(f"{x(when):.1f},{y(value):.1f}" for when, value in segment)
            parts.append(f'<polyline points="{coordinates}" fill="none" stroke="currentColor" '
                         f'stroke-width="1.5" stroke-linejoin="round"/>')
    parts.append("</svg>")
    return Chart(svg=Markup("".join(parts)),  # noqa: S704 - built above, every text escaped
                 latest=latest, peak=peak, average=sum(values) / len(values),
                 points=sum(len(segment) for segment in segments))
