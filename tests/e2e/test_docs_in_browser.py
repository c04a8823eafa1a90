"""``/docs`` in a real browser with no way out to the network: Debian's Chromium, headless,
its proxy a port where nothing answers (so any CDN request fails), loads the page from a
real uvicorn server on 127.0.0.1 (loopback bypasses the proxy) and Swagger UI renders the
API's operations from the app's own assets.

Without Chromium the test is skipped, except when ``CI`` is set (then it fails), as the
report's browser test (``test_report_in_browser.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tools import run_chromium

from tests.e2e.served_api import serving


def rendered_dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (up to 15 s of the page's own time)."""
    return run_chromium(profile, "--virtual-time-budget=15000", "--dump-dom", url)


@pytest.mark.slow
def test_swagger_ui_renders_the_operations_with_no_network(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as server:
        dom = rendered_dom(f"{server.url}/docs", tmp_path / "profile")
    assert 'class="swagger-ui"' in dom, "Swagger UI did not render"
    assert dom.count('class="opblock ') >= 20, "the operations are not drawn"
    for path in ("/rides", "/drivers/nearby", "/fares/estimate"):
        assert f'data-path="{path}"' in dom, f"{path} is not among the operations"
