"""The ``/ops`` page's past states (``GET /ops/state?at=``), computed outside the serving
process: ``dispatch replay state --ops`` runs as a child process with the serving
process's settings (every one of them, as ``DISPATCH_*`` variables: the topics, views and
markets it serves, whoever gave them), one at a time, within
``DISPATCH_OPS_PAST_TIMEOUT_S``; its JSON is the answer (docs/OPERATIONS.md, "The time
slider"). The serving process only waits: the fold takes none of its GIL.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from dispatch.api.errors import ApiError
from dispatch.settings import Settings
from dispatch.settings_env import settings_environment

MAX_REASON = 300  # characters of the child's last error line put in an answer


class PastStates:
    def __init__(self, settings: Settings, timeout_s: float) -> None:
        self.settings, self.timeout_s = settings, timeout_s
        self._lock = asyncio.Lock()

    def command(self, moment: float) -> list[str]:
        at = datetime.fromtimestamp(moment, UTC).isoformat()
        cmd = [sys.executable, "-m", "dispatch", "replay", "state", "--ops", "--at", at]
        cmd += ["--data-dir", str(self.settings.data_dir)]
        if self.settings.kafka_bootstrap is not None:
            cmd += ["--kafka", self.settings.kafka_bootstrap]
        return cmd

    async def at(self, moment: float) -> dict[str, Any]:
        """The picture as of ``moment``; 429 while another is being computed, 504 when it
        takes too long (the child is killed), 502 when the child fails (its reason)."""
        if self._lock.locked():
            raise ApiError(429, "past_state_busy", "another past state is being computed; "
                           "retry in a few seconds", headers={"Retry-After": "2"})  # fmt: skip
        async with self._lock:
            child = await asyncio.create_subprocess_exec(
                *self.command(moment),
                stdin=asyncio.subprocess.DEVNULL,
                env=settings_environment(self.settings),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(child.communicate(), self.timeout_s)
            except TimeoutError:
                await _end(child)
                reason = f"the past state took longer than {self.timeout_s:g} s"
                raise ApiError(504, "past_state_timeout", reason) from None
            except BaseException:  # the asker went away, or the API stops: not left running
                await asyncio.shield(_end(child))
                raise
            if child.returncode != 0:
                lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
                reason = lines[-1].strip()[:MAX_REASON] if lines else f"exit {child.returncode}"
                raise ApiError(502, "past_state_failed", f"the replay failed: {reason}")
            try:
                body: dict[str, Any] = orjson.loads(out)
            except orjson.JSONDecodeError as error:
                raise ApiError(
                    502, "past_state_failed", f"the replay said no JSON: {error}"
                ) from None
            return body


async def _end(child: asyncio.subprocess.Process) -> None:
    """Kill the child (if it still runs) and reap it."""
    if child.returncode is None:
        child.kill()
    await child.wait()
