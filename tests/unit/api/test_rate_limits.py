"""The per-client rate limits themselves: what they count, whom they group, what they keep.

The API-level answers (429 with Retry-After) are in tests/e2e/test_api_abuse_limits.py."""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest

from dispatch.api.errors import ApiError
from dispatch.api.ratelimit import MovingWindow, RateLimits
from dispatch.api.settings import ApiLimits


def limits(**values: object) -> RateLimits:
    return RateLimits(ApiLimits.model_validate(values))


def test_callers_are_forgotten_once_their_window_has_passed() -> None:
    """Every caller ever seen was kept for good (an empty list each, scanned by a timer every
    10 ms): memory and CPU grew with the number of distinct callers, without bound."""
    rate = limits(rate_limit_requests_per_s=5)

    def callers_come_and_go(round_: int) -> None:
        for i in range(20_000):
            rate.caller("rider", f"{round_}-{i}")
        time.sleep(1.2)  # the one-second window has passed for all of them
        rate.caller("rider", "another")
        time.sleep(0.05)
        gc.collect()

    tracemalloc.start()
    try:
        callers_come_and_go(1)
        after_one = tracemalloc.get_traced_memory()[0]
        for round_ in (2, 3):
            callers_come_and_go(round_)
        grown = tracemalloc.get_traced_memory()[0] - after_one
    finally:
        tracemalloc.stop()
    assert grown < 200_000, f"{grown} bytes more for 40,000 more callers long gone"


def test_a_caller_over_the_limit_is_told_when_to_retry() -> None:
    rate = limits(rate_limit_requests_per_s=2)
    rate.caller("rider", "a")
    rate.caller("rider", "a")
    with pytest.raises(ApiError) as refused:
        rate.caller("rider", "a")
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "1"}
    rate.caller("rider", "b")  # another caller has its own window


def test_the_window_moves_with_each_hit() -> None:
    now = [0.0]
    window = MovingWindow(2, 1.0, clock=lambda: now[0])
    assert [window.hit("a"), window.hit("b")] == [0.0, 0.0]
    now[0] = 0.5
    assert window.hit("a") == 0.0
    now[0] = 0.9
    assert window.hit("a") == pytest.approx(0.1)  # its first hit leaves the window at 1.0
    now[0] = 1.2
    assert window.hit("a") == 0.0
    assert len(window) == 1, "b, idle for a whole window, is forgotten"
