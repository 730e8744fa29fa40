"""The Datasette hook implementations; registered by `make_datasette`, not by entry point,
so they only act in a Datasette built for Kansa."""

from __future__ import annotations

from typing import Any

from datasette import hookimpl
from markupsafe import Markup, escape

from . import csv_bom, middleware, pages

NAV = (
    ("/-/kansa/month", "月ごとの監査（契約条項ごとの確認）"),
    ("/-/kansa/findings", "所見（契約条項つき）"),
    ("/-/kansa/attempts", "番号ごとの架電回数"),
    ("/-/kansa/custody", "個人情報の管理（バッチごと）"),
    ("/-/kansa/kpis", "KPI と目標"),
    ("/-/kansa/status", "台帳の状態と検証"),
)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return pages.ROUTES


@hookimpl
def asgi_wrapper(datasette: Any) -> Any:
    return lambda app: middleware.wrap(csv_bom.wrap(app), datasette)


@hookimpl
def shutdown(datasette: Any) -> None:
    """Sign the access log's closing checkpoint. Runs in the ASGI lifespan shutdown, before
    uvicorn re-raises SIGTERM/SIGINT (which would skip a `finally` in `kansa serve`)."""
    site = getattr(datasette, "kansa_site", None)
    if site is not None:
        site.log.close()
        site.sessions.close()


@hookimpl
def menu_links(datasette: Any, actor: Any) -> list[dict[str, str]] | None:
    if not actor or getattr(datasette, "kansa_site", None) is None:
        return None
    queries = [
        {"href": datasette.urls.path(f"/{db}/{name}"), "label": f"検索：{q['title']}"}
        for db, config in (datasette.config or {}).get("databases", {}).items()
        for name, q in config.get("queries", {}).items()
    ]
    return [{"href": datasette.urls.path(href), "label": label} for href, label in NAV] + queries


@hookimpl
def top_homepage(datasette: Any, request: Any) -> str | None:
    if getattr(datasette, "kansa_site", None) is None:
        return None
    items = "".join(f'<li><a href="{datasette.urls.path(href)}">{label}</a></li>' for href, label in NAV)
    queries = "".join(
        f'<li><a href="{datasette.urls.path(f"/{db}/{name}")}">{escape(q["title"])}</a>'
        f" — {escape(q['description'].split('。')[0])}。</li>"
        for db, config in (datasette.config or {}).get("databases", {}).items()
        for name, q in config.get("queries", {}).items()
    )
    return Markup(
        f'<nav class="kansa-nav"><h2>監査のページ</h2><ul>{items}</ul>'
        f"<h2>保存された検索（対象月を入れて実行）</h2><ul>{queries}</ul></nav>"
    )


@hookimpl
def extra_template_vars() -> dict[str, Any]:
    """Words and times for every template (Kansa's pages and Datasette's own)."""
    from compliance.present import JST_NOTE, jst, month_ja, word

    return {
        "jst": jst,
        "month_ja": month_ja,
        "word": word,
        "jst_note": JST_NOTE,
        "lookup_ja": LOOKUP_JA,
        "parameter_ja": PARAMETER_JA,
        "kansa_titles": _titles(),
    }


def _titles() -> dict[str, Any]:
    """metadata.yaml's database and table titles, for the home page's list."""
    from .site import load_yaml

    databases: dict[str, Any] = load_yaml("metadata.yaml").get("databases", {})
    return databases


# Datasette's filter operations (table pages) and the stored queries' parameters, in Japanese.
LOOKUP_JA = {
    "exact": "＝（等しい）",
    "not": "≠（等しくない）",
    "contains": "を含む",
    "notcontains": "を含まない",
    "endswith": "で終わる",
    "startswith": "で始まる",
    "gt": "＞（より大きい）",
    "gte": "≧（以上）",
    "lt": "＜（より小さい）",
    "lte": "≦（以下）",
    "like": "LIKE パターン",
    "notlike": "LIKE パターンでない",
    "glob": "GLOB パターン",
    "in": "のいずれか（カンマ区切り）",
    "notin": "のいずれでもない",
    "arraycontains": "配列が含む",
    "arraynotcontains": "配列が含まない",
    "date": "日付が",
    "isnull": "空（NULL）",
    "notnull": "空でない",
    "isblank": "空欄",
    "notblank": "空欄でない",
}
PARAMETER_JA = {"month": "対象月（例 2026-09）", "batch": "バッチ（例 B2026-09）", "case": "案件の参照番号"}


TIME_COLUMNS = {"at", "received", "signed_at", "as_of"}


@hookimpl
def render_cell(value: Any, column: str, table: str | None, database: str | None, datasette: Any) -> Any:
    """In the raw tables: times in JST as Japanese documents write them, event types and
    severities in words, each with the stored value (the evidence) kept small beside it."""
    if getattr(datasette, "kansa_site", None) is None:
        return None
    from compliance.present import WORDS

    words = {"type": "event", "severity": "severity"}.get(column)
    if words is not None and isinstance(value, str) and value in WORDS[words]:
        return Markup(f"{escape(WORDS[words][value])}<br><small>{escape(value)}</small>")
    if column not in TIME_COLUMNS:
        return None
    if not isinstance(value, str) or len(value) < 20 or value[4] != "-" or value[10] != "T":
        return None
    from compliance.present import jst

    try:
        shown = jst(value, seconds=True)
    except ValueError:
        return None
    return Markup(f"{escape(shown)}<br><small>{escape(value)}</small>")
