"""A ``dispatch serve`` process on Kafka for the fault tests (faults 5 and 6): started on a
free loopback port in production mode with no rate limits (the load is the test's)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from dispatch.adapters.kafka import processes
from dispatch.settings import Settings

SECRET = "q7Wm2xVbN4tRk9LpZs3YhC8dJf6GaE1uTnXoPiKw5QrM0vBl"  # random: production refuses weak ones


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(settings: Settings, port: int, out: Path) -> subprocess.Popen[bytes]:
    """``dispatch serve`` on 127.0.0.1:``port`` with ``settings`` (its Kafka connection
    included), its output appended to ``out``."""
    return processes.start_api(settings, port, out, SECRET)


def wait_ready(
    url: str, process: subprocess.Popen[bytes] | None = None, deadline_s: float = 90.0
) -> None:
    """Until ``url``/readyz answers 200 (a test failure after ``deadline_s``, or as soon as
    ``process``, the server, has exited)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"the server of {url} exited at start ({process.returncode})")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} was not ready within {deadline_s:g} s")


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM by its own pid; SIGKILL if it has not stopped in ``timeout_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
