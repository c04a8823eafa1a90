"""A simulated clock the engine reads; the simulator moves it forward."""

from __future__ import annotations

from datetime import UTC, datetime

SIM_EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()


class SimClock:
    def __init__(self, start: float = SIM_EPOCH) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
