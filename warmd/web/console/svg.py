"""Charts drawn on the server as inline SVG (pure): sparklines, a task's timeline and the
hit ratio over time with each warm-up as a band. No script draws them, so they show with
JavaScript off and cost the browser nothing; every mark carries a <title> for a tooltip
and the colours match the state classes of console.css.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape


def sparkline(values: Sequence[float], width: int = 120, height: int = 24,
              label: str = "") -> str:
    """A polyline of `values` scaled to the box; the last value as a dot."""
    if not values:
        return ""
    top = max(max(values), 1)
    step = width / max(1, len(values) - 1)
    points = [(round(i * step, 1), round(height - 2 - (v / top) * (height - 4), 1))
              for i, v in enumerate(values)]
    line = " ".join(f"{x},{y}" for x, y in points)
    last_x, last_y = points[-1]
    return (f'<svg class="spark" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
            f'<polyline points="{line}" fill="none" stroke="currentColor" stroke-width="1.5"/>'
            f'<circle cx="{last_x}" cy="{last_y}" r="2" fill="currentColor"/></svg>')


@dataclass(frozen=True, slots=True)
class Span:
    """A bar on a timeline: one lane, from start to end, in a state's colour."""

    lane: str
    start_ms: int
    end_ms: int
    state: str
    label: str


def timeline(spans: Sequence[Span], now_ms: int, width: int = 1180, lane_px: int = 26) -> str:
    """Lanes of bars on one time axis (a task's attempts: assigned, then running)."""
    if not spans:
        return ""
    lanes = list(dict.fromkeys(span.lane for span in spans))
    start = min(span.start_ms for span in spans)
    end = max(max(span.end_ms or now_ms for span in spans), start + 1)
    left, right = 110, 16
    scale = (width - left - right) / (end - start)
    height = lane_px * len(lanes) + 24
    parts = [f'<svg class="timeline" width="{width}" height="{height}" role="img" '
             f'aria-label="task timeline">']
    for row, lane in enumerate(lanes):
        y = row * lane_px + 4
        parts.append(f'<text x="0" y="{y + 15}" class="lane">{escape(lane)}</text>')
    for span in spans:
        y = lanes.index(span.lane) * lane_px + 4
        x = left + (span.start_ms - start) * scale
        bar = max(2.0, ((span.end_ms or now_ms) - span.start_ms) * scale)
        parts.append(f'<g class="bar state-{escape(span.state.lower())}">'
                     f'<title>{escape(span.label)}</title>'
                     f'<rect x="{x:.1f}" y="{y}" width="{bar:.1f}" height="{lane_px - 8}" rx="3"/>'
                     f'<text x="{x + 4:.1f}" y="{y + 13}">{escape(span.state)}</text></g>')
    parts.append(_time_axis(start, end, left, width - right, height - 4))
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Band:
    """A warm-up on the hit-ratio chart: from the plan to its measured effect."""

    start_ms: int
    end_ms: int
    label: str


def hit_ratio_chart(segments: Sequence[Sequence[tuple[int, float]]], bands: Sequence[Band],
                    width: int = 1180, height: int = 220, label: str = "hit ratio") -> str:
    """Hit ratio (0..1) over time, warm-ups as shaded bands behind it. Each segment (one
    plan: before, after) is its own line: nothing was measured between plans, so no line
    pretends to know how the ratio went there."""
    points = [point for segment in segments for point in segment]
    times = [t for t, _ in points] + [t for band in bands for t in (band.start_ms, band.end_ms)]
    if not times:
        return ""
    start, end = min(times), max(max(times), min(times) + 1)
    left, right, top, bottom = 44, 16, 10, 28
    plot_h = height - top - bottom
    scale = (width - left - right) / (end - start)

    def x(at_ms: int) -> float:
        return left + (at_ms - start) * scale

    def y(ratio: float) -> float:
        return top + (1 - ratio) * plot_h

    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(label)}"><title>{escape(label)}</title>']
    for ratio in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(ratio):.1f}" '
                     f'y2="{y(ratio):.1f}"/><text class="axis" x="{left - 6}" y="{y(ratio) + 4:.1f}"'
                     f' text-anchor="end">{int(ratio * 100)}%</text>')
    for band in bands:
        band_w = max(3.0, x(band.end_ms) - x(band.start_ms))
        parts.append(f'<rect class="band" x="{x(band.start_ms):.1f}" y="{top}" width="{band_w:.1f}"'
                     f' height="{plot_h}"><title>{escape(band.label)}</title></rect>')
    for segment in segments:
        line = " ".join(f"{x(t):.1f},{y(r):.1f}" for t, r in segment)
        parts.append(f'<polyline class="line" points="{line}"/>')
    if points:
        parts.extend(f'<circle class="dot" cx="{x(t):.1f}" cy="{y(r):.1f}" r="3">'
                     f'<title>{_clock(t)}: {r:.1%}</title></circle>' for t, r in points)
    parts.append(_time_axis(start, end, left, width - right, height - 8))
    parts.append("</svg>")
    return "".join(parts)


def _time_axis(start_ms: int, end_ms: int, left: float, right: float, y: float) -> str:
    """Three time labels (start, middle, end) under a chart."""
    labels = []
    for fraction, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        at_ms = int(start_ms + (end_ms - start_ms) * fraction)
        labels.append(f'<text class="axis" x="{left + (right - left) * fraction:.1f}" y="{y:.1f}" '
                      f'text-anchor="{anchor}">{_clock(at_ms)}</text>')
    return "".join(labels)


def _clock(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%H:%M:%S")
