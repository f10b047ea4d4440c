"""Charts drawn on the server as SVG: no script and no chart library reaches the browser."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 280
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 16, 20, 64
MAX_BAR_WIDTH = 56
GRID_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # a ratio, 0..1; None: nothing to count


def ratio_bars(
    bars: Sequence[Bar],
    *,
    title: str,
    target: float | None,
    target_label: str,
    percent: Callable[[float], str],
    no_data: str,
    chart_id: str,
) -> Markup:
    """Bars of ratios (0 to 100 %) with the target as a dashed line; met bars are green."""
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    slot = plot_width / max(len(bars), 1)
    bar_width = min(MAX_BAR_WIDTH, slot * 0.7)

    def y(value: float) -> float:
        return MARGIN_TOP + plot_height * (1 - max(0.0, min(1.0, value)))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
    ]
    for step in GRID_STEPS:
        parts.append(
            f'<line class="grid" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" '
            f'y1="{y(step):.1f}" y2="{y(step):.1f}"/>'
            f'<text class="axis" x="{MARGIN_LEFT - 6}" y="{y(step) + 4:.1f}" '
            f'text-anchor="end">{escape(percent(step))}</text>'
        )
    rotate = len(bars) > 8
    # One sentence for a chart with nothing to show: repeated per bar, the words overlap.
    empty = all(bar.value is None for bar in bars)
    if empty:
        parts.append(
            f'<text class="value muted" x="{MARGIN_LEFT + plot_width / 2:.1f}" '
            f'y="{MARGIN_TOP + plot_height / 2:.1f}" text-anchor="middle">{escape(no_data)}</text>'
        )
    for index, bar in enumerate(bars):
        centre = MARGIN_LEFT + slot * (index + 0.5)
        label_y = HEIGHT - MARGIN_BOTTOM + 16
        transform = f' transform="rotate(-35 {centre:.1f} {label_y})"' if rotate else ""
        anchor = "end" if rotate else "middle"
        parts.append(
            f'<text class="axis" x="{centre:.1f}" y="{label_y}" text-anchor="{anchor}"'
            f"{transform}>{escape(bar.label)}</text>"
        )
        if bar.value is None:
            if not empty:
                parts.append(_no_value(centre, y(0) - 6, f"{bar.label}: {no_data}"))
            continue
        met = target is None or bar.value >= target
        top = y(bar.value)
        parts.append(
            f'<rect class="bar {"met" if met else "not-met"}" x="{centre - bar_width / 2:.1f}" '
            f'y="{top:.1f}" width="{bar_width:.1f}" height="{y(0) - top:.1f}">'
            f"<title>{escape(bar.label)}: {escape(percent(bar.value))}</title></rect>"
            f'<text class="value" x="{centre:.1f}" y="{top - 5:.1f}" '
            f'text-anchor="middle">{escape(percent(bar.value))}</text>'
        )
    if target is not None:
        parts.append(
            f'<line class="target" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" '
            f'y1="{y(target):.1f}" y2="{y(target):.1f}"/>'
            f'<text class="target-label" x="{WIDTH - MARGIN_RIGHT}" y="{y(target) - 5:.1f}" '
            f'text-anchor="end">{escape(target_label)}</text>'
        )
    parts.append("</svg>")
    # Every text placed above went through escape().
    return Markup("".join(parts))


def _no_value(centre: float, baseline: float, tooltip: str) -> str:
    """A dash where a bar has nothing to count; the words are in its tooltip, since they are
    wider than a bar's slot and would run into the neighbours'."""
    return (
        f'<text class="value muted" x="{centre:.1f}" y="{baseline:.1f}" text-anchor="middle">'
        f"–<title>{escape(tooltip)}</title></text>"
    )
