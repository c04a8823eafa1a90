"""The report's verdicts on the market after warm-up: balanced or not, steady or not."""

from __future__ import annotations

import pytest

from dispatch.simulator.report import market_state, steadiness
from dispatch.simulator.results import Sample


def sample(t: float, busy: int, waiting: int, drivers: int = 100) -> Sample:
    return Sample(t, 0, waiting, drivers - busy, 0, busy, 0, 0, 0, 0)


@pytest.mark.parametrize(
    "utilisation, served, verdict",
    [
        (70.0, 99.0, "balanced"),
        (60.0, 95.0, "balanced"),
        (85.0, 99.0, "undersupplied"),
        (70.0, 90.0, "undersupplied"),
        (40.0, 90.0, "mismatched"),
        (40.0, 99.0, "oversupplied"),
    ],
)
def test_a_market_is_balanced_only_at_60_to_80_percent_utilisation_serving_95_percent(
    utilisation: float, served: float, verdict: str
) -> None:
    state, reason = market_state(utilisation, served, decided=100)
    assert state == verdict
    assert f"{utilisation:.1f}%" in reason


def test_a_market_with_nothing_decided_or_sampled_is_not_judged() -> None:
    assert market_state(None, None, decided=0)[0] == "unknown"
    assert market_state(None, 99.0, decided=10)[0] == "unknown"


def test_a_flat_market_is_steady() -> None:
    steady, reason = steadiness([sample(t, 70, 10) for t in range(10)])
    assert steady and reason.startswith("steady")


def test_utilisation_still_rising_is_not_steady() -> None:
    samples = [sample(t, 50 + 2 * t, 10) for t in range(10)]  # 50% -> 68%
    steady, reason = steadiness(samples)
    assert not steady and "utilisation" in reason and "longer warm-up" in reason


def test_a_growing_queue_of_waiting_rides_is_not_steady() -> None:
    samples = [sample(t, 70, 5 if t < 5 else 40) for t in range(10)]
    steady, reason = steadiness(samples)
    assert not steady and "queue grows" in reason


def test_too_few_samples_cannot_be_called_steady() -> None:
    steady, reason = steadiness([sample(0, 70, 1), sample(1, 70, 1)])
    assert not steady and "too few" in reason
