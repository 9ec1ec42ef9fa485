"""The pages' plots, drawn as SVG on the server: run duration and rows stored per run,
response times per hour (p50, p95), uptime per hour.

Hand-written on purpose. The page works without JavaScript, so no browser charting
library fits; the Python libraries that render SVG on the server (pygal, matplotlib)
are large dependencies for three plain kinds of plot, and write text labels into their
markup themselves — data would reach the page by a path Jinja2 does not escape. Here
this module computes numbers only (coordinates, and labels as plain strings); the
templates (``templates/_charts.html``) write the SVG under Jinja2's autoescape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WIDTH, HEIGHT = 640, 150
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 10, 24


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    status: str
    href: str | None = None


@dataclass(frozen=True)
class Line:
    name: str
    css: str
    segments: list[str]  # SVG polyline point lists; a gap in the data starts a new one


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    label: str


@dataclass
class Plot:
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    points: list[Point] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    empty: str | None = None  # said instead of the plot when there is nothing to draw

    @property
    def left(self) -> int:
        return LEFT

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def top(self) -> int:
        return TOP

    @property
    def bottom(self) -> int:
        return self.height - BOTTOM


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above ``value`` (an axis' top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return float(step * power)
    return float(10 * power)


def short(value: float) -> str:
    """An axis label: 1500 → 1.5k, 0.25 → 0.25."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _y_axis(plot: Plot, top_value: float, unit: str) -> Callable[[float], float]:
    span = plot.bottom - plot.top

    def y(value: float) -> float:
        return round(plot.bottom - span * min(value, top_value) / top_value, 1)

    plot.y_ticks = [Tick(y(v), short(v) + unit) for v in (0, top_value / 2, top_value)]
    return y


def _time_label(at: datetime, span_s: float) -> str:
    if span_s < 3_600:
        return at.strftime("%H:%M:%S")
    return at.strftime("%H:%M" if span_s < 86_400 else "%m-%d %H:%M")


def runs_plot(series: Sequence[Mapping[str, Any]], key: str, title: str, unit: str = "") -> Plot:
    """One dot per run at its start time, as high as its ``key`` value, coloured by its
    status and linking to it; joined by a line."""
    plot = Plot(title)
    rows = [r for r in series if r.get(key) is not None]
    if not rows:
        plot.empty = "no finished runs yet"
        return plot
    first: datetime = rows[0]["started_at"]
    last: datetime = rows[-1]["started_at"]
    span = max((last - first).total_seconds(), 1e-9)
    y = _y_axis(plot, nice_ceiling(max(float(r[key]) for r in rows)), unit)
    width = plot.right - plot.left

    def x(at: datetime) -> float:
        if len(rows) == 1:
            return plot.left + width / 2
        return round(plot.left + width * (at - first).total_seconds() / span, 1)

    for row in rows:
        value = float(row[key])
        shown = f"{value:.2f}{unit}" if unit == "s" else f"{short(value)}{unit}"
        when = row["started_at"].strftime("%Y-%m-%d %H:%M:%S")
        label = f"{when} · {row['status']} · {shown}"
        point = Point(x(row["started_at"]), y(value), label, row["status"], f"/runs/{row['id']}")
        plot.points.append(point)
    plot.lines.append(Line(key, "trend", [" ".join(f"{p.x},{p.y}" for p in plot.points)]))
    ticks = [first, last] if len(rows) > 1 else [first]
    plot.x_ticks = [Tick(x(t), _time_label(t, span)) for t in ticks]
    return plot


def response_plot(hours: Sequence[Mapping[str, Any]], title: str) -> Plot:
    """p50 and p95 response time per hour; an hour without responses breaks the lines."""
    plot = Plot(title)
    values = [h[k] for h in hours for k in ("p50_ms", "p95_ms") if h[k] is not None]
    if not values:
        plot.empty = "no response times in these hours"
        return plot
    y = _y_axis(plot, nice_ceiling(max(values)), " ms")
    step = (plot.right - plot.left) / max(len(hours) - 1, 1)
    for key, css in (("p95_ms", "p95"), ("p50_ms", "p50")):
        segments: list[list[str]] = [[]]
        for i, hour in enumerate(hours):
            if hour[key] is None:
                if segments[-1]:
                    segments.append([])
                continue
            px, py = round(plot.left + i * step, 1), y(hour[key])
            segments[-1].append(f"{px},{py}")
            label = f"{hour['hour']:%m-%d %H:00} · {key[:3]} {hour[key]} ms"
            plot.points.append(Point(px, py, label, css))
        plot.lines.append(Line(key[:3], css, [" ".join(s) for s in segments if s]))
    plot.x_ticks = _hour_ticks(hours, plot.left, step)
    return plot


def uptime_bars(hours: Sequence[Mapping[str, Any]], title: str) -> Plot:
    """One bar per hour, as high as the share of runs that passed; grey without runs."""
    plot = Plot(title, height=70)
    step = (plot.right - plot.left) / max(len(hours), 1)
    y = _y_axis(plot, 1.0, "")
    plot.y_ticks = [Tick(y(0), "0%"), Tick(y(1), "100%")]
    for i, hour in enumerate(hours):
        ratio = hour["uptime"]
        when = f"{hour['hour']:%m-%d %H:00}"
        if ratio is None:
            css, top, label = "none", y(1), f"{when} · no runs"
        else:
            css = "up" if ratio >= 0.999 else "degraded" if ratio >= 0.9 else "down"
            top = y(max(ratio, 0.04))  # a bar of a fully failed hour stays visible
            label = f"{when} · {hour['passed']}/{hour['runs']} passed"
        left, width = round(plot.left + i * step + 0.5, 1), round(max(step - 1, 1), 1)
        plot.bars.append(Bar(left, top, width, round(plot.bottom - top, 1), css, label))
    plot.x_ticks = _hour_ticks(hours, plot.left + step / 2, step)
    return plot


def _hour_ticks(hours: Sequence[Mapping[str, Any]], start: float, step: float) -> list[Tick]:
    if not hours:
        return []
    picks = sorted({0, len(hours) // 2, len(hours) - 1})
    return [Tick(round(start + i * step, 1), f"{hours[i]['hour']:%m-%d %H:00}") for i in picks]
