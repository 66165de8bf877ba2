"""A small SVG line chart for benchmark figures in docs/ (no plotting library needed).

`line_chart(title, x_label, y_label, series)` returns a self-contained SVG document: axes
with five ticks each, one polyline with dots per series, and a legend. The x axis may be
logarithmic (sizes that grow by 10x); y always starts at 0 so ratios read true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 40, 90
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
TICKS = 5


@dataclass(frozen=True)
class Series:
    """One line: its legend label and its points (x and y of equal length)."""

    label: str
    x: list[float]
    y: list[float]


def _number(value: float) -> str:
    """A tick label: 1k, 2.5M, 0.5 ... short enough for an axis."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _nice_step(span: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about TICKS ticks over `span`."""
    raw = span / (TICKS - 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


class _Scale:
    """Maps data values to pixels along one axis (optionally logarithmic)."""

    def __init__(self, low: float, high: float, start: float, end: float, log: bool) -> None:
        self.log = log
        self.low, self.high = (math.log10(low), math.log10(high)) if log else (low, high)
        if self.high == self.low:
            self.high = self.low + 1
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        value = math.log10(value) if self.log else value
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)

    def ticks(self) -> list[float]:
        """Decades on a log axis; round steps from the low end on a linear one."""
        if self.log:
            return [10.0 ** power for power in range(math.ceil(self.low - 1e-9),
                                                     math.floor(self.high + 1e-9) + 1)]
        step = _nice_step(self.high - self.low)
        count = int((self.high - self.low) / step + 1e-9) + 1
        return [self.low + step * number for number in range(count)]


def line_chart(title: str, x_label: str, y_label: str, series: list[Series],
               log_x: bool = False) -> str:
    """The chart as an SVG document (a string)."""
    xs = [x for line in series for x in line.x]
    ys = [y for line in series for y in line.y if math.isfinite(y)]
    x_scale = _Scale(min(xs), max(xs), LEFT, WIDTH - RIGHT, log_x)
    y_scale = _Scale(0.0, max(ys, default=1.0) * 1.1, HEIGHT - BOTTOM, TOP, False)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>']
    parts += _axes(x_scale, y_scale, x_label, y_label)
    for number, line in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        points = [(x_scale(x), y_scale(y)) for x, y in zip(line.x, line.y, strict=True)
                  if math.isfinite(y)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points]
        legend_y = HEIGHT - 30 + 14 * (number // 2)
        legend_x = LEFT + (number % 2) * 320
        parts.append(f'<rect x="{legend_x}" y="{legend_y - 9}" width="12" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 18}" y="{legend_y}">{escape(line.label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _axes(x_scale: _Scale, y_scale: _Scale, x_label: str, y_label: str) -> list[str]:
    bottom, left = HEIGHT - BOTTOM, LEFT
    parts = [f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}" stroke="black"/>']
    for tick in x_scale.ticks():
        x = x_scale(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="black"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{_number(tick)}</text>')
    for tick in y_scale.ticks():
        y = y_scale(tick)
        parts.append(f'<line x1="{left - 5}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                     f'stroke="#ddd"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
    parts.append(f'<text x="{(left + WIDTH - RIGHT) / 2}" y="{bottom + 36}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text x="16" y="{(TOP + bottom) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 16 {(TOP + bottom) / 2})">{escape(y_label)}</text>')
    return parts
