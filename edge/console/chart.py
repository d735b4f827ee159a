"""The today page's chart, drawn on the server as inline SVG: no script, no CDN (the hall LAN has
no internet), readable on a tablet.  Bars: tickets issued and served per hour; line: the mean
wait (issue -> first call) of the tickets first called in that hour, on its own scale."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 44, 52, 28, 36
LABEL = "每小时取号、办结和等候时间"
ISSUED, SERVED, WAIT = "#4a78c2", "#3aa663", "#d9822b"


def day_chart(hours: dict[str, Any]) -> Markup:
    """``hours``: {"09": {"issued": 14, "served": 11, "wait_mean_s": 412.5}, ...} (queue.report)."""
    if not hours:
        return Markup('<p class="muted">今天还没有数据</p>')
    keys = sorted(hours)
    first, last = int(keys[0]), int(keys[-1])
    slots = list(range(first, last + 1))
    counts = [(_n(hours, h, "issued"), _n(hours, h, "served")) for h in slots]
    waits = [_wait_min(hours, h) for h in slots]
    top = max(1, *(max(pair) for pair in counts))
    wait_top = max([w for w in waits if w is not None] or [1.0])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot_w = plot_w / len(slots)
    bar_w = max(2.0, slot_w * 0.36)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{LABEL}">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#888"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" font-size="12">{top}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="12">0</text>',
    ]
    points = []
    for index, (hour, (issued, served), wait) in enumerate(zip(slots, counts, waits, strict=True)):
        x = LEFT + index * slot_w + slot_w / 2
        for offset, value, colour, what in ((-bar_w, issued, ISSUED, "取号"), (0.0, served, SERVED, "办结")):
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}"'
                f' fill="{colour}"><title>{hour:02d}时 {what} {value}</title></rect>'
            )
        below = HEIGHT - BOTTOM + 16
        parts.append(f'<text x="{x:.1f}" y="{below}" text-anchor="middle" font-size="12">{hour:02d}</text>')
        if wait is not None:
            points.append(f"{x:.1f},{TOP + plot_h - plot_h * wait / wait_top:.1f}")
    if points:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{WAIT}" stroke-width="3"/>')
        parts.append(
            f'<text x="{WIDTH - RIGHT + 6}" y="{TOP + 4}" font-size="12" fill="{WAIT}">'
            f"{wait_top:.0f}分</text>"
        )
    legend = ((ISSUED, "取号"), (SERVED, "办结"), (WAIT, "平均等候(分钟)"))
    for index, (colour, label) in enumerate(legend):
        x = LEFT + index * 150
        parts.append(f'<rect x="{x}" y="6" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x + 20}" y="18" font-size="14">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # every value above is a number we formatted, or escaped


def _n(hours: dict[str, Any], hour: int, key: str) -> int:
    value = (hours.get(f"{hour:02d}") or {}).get(key)
    return int(value) if isinstance(value, (int, float)) else 0


def _wait_min(hours: dict[str, Any], hour: int) -> float | None:
    value = (hours.get(f"{hour:02d}") or {}).get("wait_mean_s")
    return value / 60 if isinstance(value, (int, float)) else None
