"""Tools the tests run from the machine's packages (Debian's chromium and prometheus's
promtool; `scripts/ci-browser.sh`, `scripts/ci-prometheus.sh` install them): a test
without one is skipped, except when ``CI`` is set, where it fails (CI cannot go green by
not running it). And a headless Chromium with no way out to the network."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def tool(name: str, installer: str) -> str:
    """The path of ``name``; skipped (failed under ``CI``) when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        why = f"no {name} on PATH: install it with {installer}"
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set, so this is a failure, not a skip)")
        pytest.skip(why)
    return path


def chromium() -> str:
    return tool("chromium", "scripts/ci-browser.sh (Debian's package)")


def run_chromium(profile: Path, *args: str) -> str:
    """Run headless Chromium on a fresh profile with ``args``: no extensions, no background
    traffic, and a proxy that answers nothing (loopback bypasses it), so it cannot reach
    the network; its stdout."""
    cmd = [
        chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--proxy-server=127.0.0.1:9",  # nothing answers there: no way out to the network
        f"--user-data-dir={profile}",
        *args,
    ]
    env = {**os.environ, "HOME": str(profile)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
