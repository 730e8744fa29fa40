"""Small HTML pieces shared by the notebooks and `kansa report`: complete tables (every row,
no pagination, no script) and static charts (altair rendered to SVG by vl-convert, so a
report opens offline on a closed network)."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body { font-family: "Noto Sans CJK JP", "Hiragino Sans", "Yu Gothic", sans-serif; margin: 2em; color: #1a1a1a; }
h1, h2, h3 { color: #123; }
table.kansa { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
table.kansa th, table.kansa td { border: 1px solid #bbb; padding: 3px 6px; vertical-align: top; }
table.kansa th { background: #eef2f5; }
blockquote { border-left: 4px solid #999; margin: 0.5em 0; padding: 0.3em 0.8em; background: #fafafa; }
.ok { background: #e8f6ec; border-left: 6px solid #27ae60; padding: 0.6em; }
.alarm { background: #c0392b; color: #fff; padding: 0.8em; font-weight: bold; }
footer { margin-top: 3em; border-top: 1px solid #999; font-size: 0.8em; color: #444; }
pre { white-space: pre-wrap; word-break: break-all; background: #f6f6f6; padding: 0.5em; }
@media print { body { margin: 0.5cm; } table.kansa { page-break-inside: auto; } tr { page-break-inside: avoid; } }
"""


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def html_table(rows: list[dict[str, Any]], *, empty: str = "（なし none）") -> str:
    """Every row, as a plain HTML table."""
    if not rows:
        return f"<p>{escape(empty)}</p>"
    headers = list(rows[0])
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row.get(h))}</td>" for h in headers) + "</tr>" for row in rows
    )
    return f'<table class="kansa"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def chart_svg(chart: Any) -> str:
    """An altair chart as inline SVG (vl-convert embeds no fonts or scripts from anywhere)."""
    import vl_convert

    svg: str = vl_convert.vegalite_to_svg(chart.to_dict())
    return svg
