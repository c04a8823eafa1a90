"""Worker processes started by other processes (the simulator, tests, benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr, TypeAdapter

from dispatch.settings import MarketConfig, ProductConfig, Settings

_MARKETS = TypeAdapter(list[MarketConfig])
_PRODUCTS = TypeAdapter(dict[str, ProductConfig])


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a `dispatch worker` these settings: every one of them
    (a setting left unset here is unset there too, whatever this process's environment
    says)."""
    assert settings.kafka_bootstrap is not None, "a worker runs on Kafka"
    env = dict(os.environ)
    for name in Settings.model_fields:
        key, value = f"DISPATCH_{name.upper()}", getattr(settings, name)
        if value is None:
            env.pop(key, None)
        elif name == "markets":
            env[key] = _MARKETS.dump_json(value).decode()
        elif name == "products":
            env[key] = _PRODUCTS.dump_json(value).decode()
        elif name == "fares":  # as JSON (the amounts as text), whether from a file or not
            env[key] = value.model_dump_json()
        elif name == "fares_file":  # read already: its rules go as DISPATCH_FARES
            env.pop(key, None)
        elif isinstance(value, SecretStr):  # str() of it is asterisks
            env[key] = value.get_secret_value()
        else:
            env[key] = str(value)
    return env


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


def stop_worker(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM the worker's own pid; SIGKILL it if it has not stopped in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
