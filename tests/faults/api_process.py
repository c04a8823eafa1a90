"""A ``dispatch serve`` process on Kafka for the fault tests (faults 5 and 6): started on a
free loopback port in production mode with no rate limits (the load is the test's)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from dispatch.adapters.kafka.processes import worker_env
from dispatch.settings import Settings

SECRET = "q7Wm2xVbN4tRk9LpZs3YhC8dJf6GaE1uTnXoPiKw5QrM0vBl"  # random: production refuses weak ones


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(settings: Settings, port: int, out: Path) -> subprocess.Popen[bytes]:
    """``dispatch serve`` on 127.0.0.1:``port`` with ``settings`` (its Kafka connection
    included), its output appended to ``out``."""
    assert settings.kafka_bootstrap is not None
    env = worker_env(settings) | {
        "DISPATCH_AUTH_SECRET": SECRET,
        "DISPATCH_AUTH_ENVIRONMENT": "production",
        "DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN": "0",
        "DISPATCH_RATE_LIMIT_REQUESTS_PER_S": "0",
    }
    command = [sys.executable, "-m", "dispatch", "serve", "--host", "127.0.0.1", "--port"]
    with out.open("ab") as sink:
        return subprocess.Popen(
            [*command, str(port)], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
