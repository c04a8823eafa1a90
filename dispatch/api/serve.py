"""``dispatch serve``: the API over an embedded runtime, run by uvicorn."""

from __future__ import annotations

import uvicorn

from dispatch.api.app import create_app
from dispatch.api.auth import AuthSettings
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    auth: AuthSettings | None = None,
) -> None:
    """Build the runtime, serve the API until interrupted; the app's lifespan starts and
    stops the runtime. ``auth`` defaults to ``AuthSettings()`` (``DISPATCH_AUTH_*``)."""
    runtime = build_runtime(settings)
    app = create_app(runtime, auth if auth is not None else AuthSettings())
    uvicorn.run(app, host=host, port=port, log_level="info")
