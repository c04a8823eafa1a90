"""A real uvicorn server of the API on 127.0.0.1 for the e2e tests of its limits and its
HTTP protocol (``serving``), and raw connections to it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.api.serve import server_config
from dispatch.api.settings import ApiLimits
from dispatch.bootstrap import build_runtime
from dispatch.runtime import Runtime
from dispatch.settings import Settings

AUTH = AuthSettings(secret=SecretStr("W8nR2kLp5Xz9Qv3Tj7Hb1Mc4Fd6Gs0Ya"), environment="production")
HOME = {"name": "Dee", "home": {"lat": 37.7749, "lng": -122.4194}}
WAIT_S = 10.0


@dataclass
class Server:
    url: str
    port: int
    runtime: Runtime

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=WAIT_S)

    def raw(self, data: bytes) -> socket.socket:
        """A connection that has sent ``data`` (nothing more)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT_S)
        sock.sendall(data)
        return sock


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    data_dir: Path,
    log_level: str = "warning",
    settings: dict[str, Any] | None = None,
    **limits: Any,
) -> Iterator[Server]:
    """``settings``: the engine's, beside the data dir and two shards; ``limits``: the API's."""
    runtime = build_runtime(Settings(data_dir=data_dir, shards=2, **(settings or {})),
                            clock=time.time)  # fmt: skip
    api_limits = ApiLimits.model_validate(limits)
    app = create_app(runtime, AUTH, ApiOptions(command_timeout_s=5.0), limits=api_limits)
    port = _free_port()
    config = server_config(app, api_limits, "127.0.0.1", port, log_level)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S * 3
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", port, runtime)
    finally:
        server.should_exit = True
        thread.join(WAIT_S * 3)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def head(server: Server) -> list[int | None]:
    return [server.runtime.head(shard) for shard in range(2)]
