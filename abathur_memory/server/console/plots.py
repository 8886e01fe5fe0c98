"""Line plots as inline SVG, drawn on the server: no chart library, no script, works offline.

Every label is escaped; colours come from a fixed palette so a tool keeps its colour across
the plots of one page.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 10, 22


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top``."""
    if top <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(top))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= top:
            return step * magnitude
    return top  # pragma: no cover


def line_plot(
    title: str,
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    unit: str = "",
    x_labels: tuple[str, str] = ("", ""),
) -> Markup:
    """One SVG with a line per series (None: no point in that step)."""
    steps = max((len(values) for _, values in series), default=0)
    top = _nice(max((v for _, vs in series for v in vs if v is not None), default=0.0))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (inner_w * i / (steps - 1) if steps > 1 else inner_w / 2)

    def y(v: float) -> float:
        return TOP + inner_h - inner_h * v / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" class="plot" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{WIDTH - RIGHT}" y="{TOP + 8}" text-anchor="end" font-size="11" '
        f'font-weight="600">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + inner_h}" x2="{WIDTH - RIGHT}" y2="{TOP + inner_h}" '
        'stroke="#9ca3af"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + inner_h}" stroke="#9ca3af"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" font-size="10">'
        f"{escape(f'{top:g}{unit}')}</text>",
        f'<text x="{LEFT - 4}" y="{TOP + inner_h}" text-anchor="end" font-size="10">0</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="10">{escape(x_labels[0])}</text>',
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end" font-size="10">'
        f"{escape(x_labels[1])}</text>",
    ]
    for n, (name, values) in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(values):
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            elif run:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                    f'points="{" ".join(run)}"><title>{escape(name)}</title></polyline>'
                )
    legend_y = TOP + 10
    for n, (name, _) in enumerate(series[:7]):
        colour = PALETTE[n % len(PALETTE)]
        parts.append(
            f'<rect x="{LEFT + 8}" y="{legend_y + 12 * n - 7}" width="8" height="8" '
            f'fill="{colour}"/><text x="{LEFT + 20}" y="{legend_y + 12 * n}" font-size="10">'
            f"{escape(name)}</text>"
        )
    if not series:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="12">'
            "no calls in this window</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
