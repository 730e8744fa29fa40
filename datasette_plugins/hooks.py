"""The Datasette hook implementations; registered by `make_datasette`, not by entry point,
so they only act in a Datasette built for Kansa."""

from __future__ import annotations

from typing import Any

from datasette import hookimpl
from markupsafe import Markup

from . import middleware, pages

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
    return lambda app: middleware.wrap(app, datasette)


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
    return [{"href": datasette.urls.path(href), "label": label} for href, label in NAV]


@hookimpl
def top_homepage(datasette: Any, request: Any) -> str | None:
    if getattr(datasette, "kansa_site", None) is None:
        return None
    items = "".join(f'<li><a href="{datasette.urls.path(href)}">{label}</a></li>' for href, label in NAV)
    return Markup(f'<nav class="kansa-nav"><ul>{items}</ul></nav>')


@hookimpl
def extra_template_vars() -> dict[str, Any]:
    """Words and times for every template (Kansa's pages and Datasette's own)."""
    from compliance.present import JST_NOTE, jst, month_ja, word

    return {"jst": jst, "month_ja": month_ja, "word": word, "jst_note": JST_NOTE}
