"""Worker and API processes started by other processes (the simulator, tests, benchmarks)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from dispatch.settings import Settings
from dispatch.settings_env import settings_environment


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a `dispatch worker` these settings: every one of them
    (``dispatch.settings_env``)."""
    assert settings.kafka_bootstrap is not None, "a worker runs on Kafka"
    return settings_environment(settings)


def start_worker(
    settings: Settings,
    log: Path,
    member: str,
    clock: str = "wall",
    wrapper: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start `python -m dispatch worker` with its output in ``log``; ``wrapper``: a command
    it runs under (e.g. ``setpriv --reuid U ...``, for a firewall rule that matches its
    traffic alone)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dispatch", "worker", "--clock", clock, "--member", member]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*wrapper, *command],
            env=worker_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_api(settings: Settings, port: int, log: Path, secret: str) -> subprocess.Popen[bytes]:
    """Start `python -m dispatch serve` on 127.0.0.1:``port`` with ``settings`` (its Kafka
    connection included), in production mode with token secret ``secret`` and no rate
    limits (the load is the caller's), its output appended to ``log``."""
    env = worker_env(settings) | {
        "DISPATCH_AUTH_SECRET": secret,
        "DISPATCH_AUTH_ENVIRONMENT": "production",
        "DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN": "0",
        "DISPATCH_RATE_LIMIT_REQUESTS_PER_S": "0",
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dispatch", "serve", "--host", "127.0.0.1", "--port"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [*command, str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop_worker(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM the worker's own pid; SIGKILL it if it has not stopped in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
