"""``/docs`` is Swagger UI served whole by the app: its page names only the app's own
assets (no CDN), those assets and their licence are served, and ReDoc (CDN-only) is off."""

from __future__ import annotations

import re

from api_world import World


def test_the_docs_page_loads_its_scripts_and_styles_from_the_app_alone(world: World) -> None:
    page = world.client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, "the page names no script or style"
    assert all(s.startswith("/docs/assets/") for s in sources), sources
    assert "//" not in " ".join(sources)  # nothing from another host
    assert "url: '/openapi.json'" in page.text
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        served = world.client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200 and kind in served.headers["content-type"]
        assert len(served.content) > 10_000


def test_the_bundles_licence_is_served_beside_it(world: World) -> None:
    licence = world.client.get("/docs/licence")
    assert licence.status_code == 200 and "Apache License" in licence.text


def test_redoc_is_off_and_the_docs_routes_are_not_in_the_openapi(world: World) -> None:
    assert world.client.get("/redoc").status_code == 404
    paths = world.client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/docs")]
