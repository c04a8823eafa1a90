"""The driver's own record of its places (``Driver.locate``): crossings recorded only when
the set changes, and none kept once the driver goes offline, is handed to another shard,
or is erased, so that its next ping inside enters again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from dispatch.domain.driver import Driver

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def online_driver() -> Driver:
    driver = Driver.register(uuid.uuid4(), "D", T0)
    driver.go_online(T0)
    return driver


def crossings(driver: Driver) -> list[str]:
    return [type(e).__name__ for e in driver.collect_events() if "Place" in type(e).__name__]


def test_a_repeated_location_records_nothing_and_a_change_records_the_difference() -> None:
    driver = online_driver()
    driver.locate(frozenset({"sfo", "terminal"}), T0)
    driver.locate(frozenset({"sfo", "terminal"}), T0)
    driver.locate(frozenset({"sfo"}), T0)
    assert crossings(driver) == ["EnteredPlace", "EnteredPlace", "LeftPlace"]
    assert list(driver.places) == ["sfo"]


def test_offline_handed_off_or_erased_the_driver_is_in_no_place() -> None:
    for end in ("offline", "handed_off", "erased"):
        driver = online_driver()
        driver.locate(frozenset({"sfo"}), T0)
        if end == "handed_off":
            driver.hand_off(1, T0 + timedelta(seconds=1))
        else:
            driver.go_offline(False, T0 + timedelta(seconds=1))
            if end == "erased":
                driver.erase(None, T0 + timedelta(seconds=2))
        assert not driver.places, end
    back = online_driver()
    back.locate(frozenset({"sfo"}), T0)
    back.go_offline(False, T0)
    back.go_online(T0)
    back.locate(frozenset({"sfo"}), T0)  # the first ping back inside enters again
    assert crossings(back) == ["EnteredPlace", "EnteredPlace"]
