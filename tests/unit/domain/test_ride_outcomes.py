"""The outcome a rider is told when a ride ends is the terminal status its ending left."""

from __future__ import annotations

from typing import get_args

from dispatch.domain.ride import RIDE_ENDINGS, RideStatus
from dispatch.domain.rider import RideOutcome


def test_the_words_a_rider_may_be_told_are_the_values_of_the_ride_endings() -> None:
    status, words = get_args(RideOutcome)
    assert status is RideStatus
    assert sorted(get_args(words)) == sorted(s.value for s in RIDE_ENDINGS.values())
