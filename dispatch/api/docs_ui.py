"""The interactive API documentation at ``/docs``, served whole by the app: Swagger UI's
scripts and styles come from the ``swagger-ui-py`` package (Swagger UI 5, Apache-2.0, its
licence at ``/docs/licence``), not from a CDN, so the page works on a machine with no
internet. ReDoc, which FastAPI loads from a CDN, is off."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui.utils import SWAGGER_UI_PY_ROOT  # type: ignore[import-untyped]

ASSETS = "/docs/assets"
STATIC = Path(SWAGGER_UI_PY_ROOT) / "static"  # Swagger UI's own dist, and its LICENSE


def install(app: FastAPI) -> None:
    """``/docs`` (the page), ``/docs/assets/...`` (its scripts and styles) and
    ``/docs/licence``, none of them in the OpenAPI document."""
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="swagger-ui-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} - Swagger UI"
    notice = (STATIC / "LICENSE").read_text(encoding="utf-8")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    @app.get("/docs/licence", include_in_schema=False)
    async def swagger_ui_licence() -> PlainTextResponse:
        return PlainTextResponse(notice)
