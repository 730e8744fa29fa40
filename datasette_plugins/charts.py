"""KPI charts as inline SVG: drawn on the server, so the page needs no script and no CDN."""

from __future__ import annotations

from html import escape
from typing import Any

from markupsafe import Markup

LABELS = {
    "KPI-CONTACT": "接触率 contact rate",
    "KPI-PROMISE": "納付約束率 promise rate",
    "KPI-VOLUME": "架電件数 cases called",
    "KPI-CALLBACKS": "折り返し件数 callbacks",
}
WIDTH, HEIGHT, PAD, BAR = 320, 170, 30, 36


def _fmt(value: float, rate: bool) -> str:
    return f"{value * 100:.1f}%" if rate else f"{value:g}"


def one_chart(kpi: str, points: list[tuple[str, float | None]], target: float | None) -> str:
    rate = all(v is None or 0 <= v <= 1 for _, v in points) and kpi in ("KPI-CONTACT", "KPI-PROMISE")
    top = max([v for _, v in points if v is not None] + ([target] if target is not None else []) + [1e-9])
    top = 1.0 if rate else top * 1.15
    plot_h = HEIGHT - 2 * PAD
    step = (WIDTH - 2 * PAD) / max(len(points), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" class="kpi-chart" aria-label="{escape(LABELS.get(kpi, kpi))}">',
        f'<text x="{PAD}" y="16" font-size="13">{escape(LABELS.get(kpi, kpi))}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#555"/>',
    ]
    for i, (month, value) in enumerate(points):
        x = PAD + i * step + (step - BAR) / 2
        if value is not None:
            h = plot_h * value / top
            y = HEIGHT - PAD - h
            met = target is None or value >= target
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{BAR}" height="{h:.1f}"'
                f' fill="{"#2b7bb9" if met else "#c0392b"}">'
                f"<title>{escape(month)}: {_fmt(value, rate)}</title></rect>"
            )
            parts.append(
                f'<text x="{x + BAR / 2:.1f}" y="{y - 3:.1f}" font-size="10" text-anchor="middle">'
                f"{_fmt(value, rate)}</text>"
            )
        parts.append(
            f'<text x="{x + BAR / 2:.1f}" y="{HEIGHT - PAD + 13}" font-size="10" text-anchor="middle">'
            f"{escape(month)}</text>"
        )
    if target is not None:
        y = HEIGHT - PAD - plot_h * target / top
        parts.append(
            f'<line x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - PAD}" y2="{y:.1f}" stroke="#e67e22"'
            f' stroke-dasharray="5,3"><title>目標 target {_fmt(target, rate)}</title></line>'
        )
        parts.append(
            f'<text x="{WIDTH - PAD}" y="{y - 3:.1f}" font-size="10" text-anchor="end" fill="#e67e22">'
            f"目標 target {_fmt(target, rate)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def kpi_chart(rows: list[dict[str, Any]]) -> Markup:
    """One small bar chart per KPI, months left to right, the target as a dashed line."""
    by_kpi: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kpi.setdefault(row["kpi"], []).append(row)
    charts = []
    for kpi in sorted(by_kpi):
        series = sorted(by_kpi[kpi], key=lambda r: r["month"])
        targets = [r["target"] for r in series if r["target"] is not None]
        charts.append(
            one_chart(kpi, [(r["month"], r["value"]) for r in series], targets[-1] if targets else None)
        )
    return Markup("".join(charts))
