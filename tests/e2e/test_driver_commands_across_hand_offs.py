"""A driver's commands stay idempotent across hand-offs (issue #14): the live records of
its commands travel with the driver, so a retry sent to the shard that serves it now gets
the first outcome, wherever the command was handled, and is never applied twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from test_driver_handoff_engine import AFTER_S, SAN_JOSE, SF, A, B, City

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.command_record import CarriedRecord, CommandRecord, record_ids
from dispatch.domain.driver import Driver, DriverStatus
from dispatch.shard.crossshard.messages import Envelope, HandOff
from schemas import commands as c


@pytest.fixture
def city(tmp_path: Path) -> City:
    return City(tmp_path)


def retry(city: City, command: Any, command_id: str, shard: int) -> str:
    """Send ``command`` again under the id it was first sent with, to ``shard``."""
    envelope = c.CommandEnvelope(command_id=command_id, issued_at=city.clock.now,
                                 command=command, shard=shard)  # fmt: skip
    city.engine.transport.send_command(envelope)
    return command_id


def offline_and_back_online(city: City, driver: UUID) -> str:
    """The driver goes offline and online again at home; the GoOffline's command id."""
    went_offline = city.send(c.GoOffline(driver_id=driver))
    city.run(A)
    city.send(c.GoOnline(driver_id=driver))
    city.run(A)
    return went_offline


def test_a_go_offline_retried_after_its_driver_was_handed_off_is_not_applied_again(
    city: City,
) -> None:
    driver = city.driver_online_at_home()
    went_offline = offline_and_back_online(city, driver)
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)
    assert city.get(B, driver).status == DriverStatus.AVAILABLE

    retry(city, c.GoOffline(driver_id=driver), went_offline, shard=B)
    city.settle()

    answer = city.outcome(went_offline)
    assert (answer.accepted, answer.duplicate, answer.shard) == (True, True, B)
    assert city.get(B, driver).status == DriverStatus.AVAILABLE
    assert city.verify() == []


def test_a_refused_driver_command_retried_after_a_hand_off_is_refused_again(city: City) -> None:
    driver = city.driver_online_at_home()
    rider, ride = city.ride_offered_at_home(driver)
    refused = city.send(c.GoOffline(driver_id=driver))  # it has an open offer
    city.send(c.DeclineOffer(driver_id=driver, ride_id=ride))
    city.send(c.CancelRide(ride_id=ride, rider_id=rider, reason="changed my mind"))
    city.settle()
    first = city.outcome(refused)
    assert (first.accepted, first.code) == (False, "illegal_transition")
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)
    assert city.get(B, driver).status == DriverStatus.AVAILABLE

    retry(city, c.GoOffline(driver_id=driver), refused, shard=B)
    city.settle()

    again = city.outcome(refused)
    assert (again.accepted, again.code, again.duplicate) == (False, "illegal_transition", True)
    assert city.get(B, driver).status == DriverStatus.AVAILABLE


def test_a_command_handled_at_the_new_shard_travels_back_with_the_driver(city: City) -> None:
    driver = city.driver_online_at_home()
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)
    went_offline = city.send(c.GoOffline(driver_id=driver), shard=B)
    city.run(B)
    city.send(c.GoOnline(driver_id=driver), shard=B)
    city.run(B)
    city.drive_to(driver, SF, AFTER_S + 10)
    assert city.get(A, driver).status == DriverStatus.AVAILABLE  # handed back home

    retry(city, c.GoOffline(driver_id=driver), went_offline, shard=A)
    city.settle()

    answer = city.outcome(went_offline)
    assert (answer.accepted, answer.duplicate, answer.shard) == (True, True, A)
    assert city.get(A, driver).status == DriverStatus.AVAILABLE
    assert city.verify() == []


def test_a_record_past_its_window_does_not_travel(tmp_path: Path) -> None:
    window = 60.0
    city = City(tmp_path, idempotency_window_s=window)
    driver = city.driver_online_at_home()
    old = city.send(c.GoOffline(driver_id=driver))
    city.run(A)
    city.clock.now += window
    recent = city.send(c.GoOnline(driver_id=driver))
    city.run(A)

    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)

    arrived: Driver = city.get(B, driver)
    assert arrived.status == DriverStatus.AVAILABLE
    assert set(arrived.commands) == {recent}
    assert old not in arrived.commands


def test_the_driver_keeps_only_the_commands_whose_records_are_live(city: City) -> None:
    driver_id = city.driver_online_at_home()
    driver: Driver = city.get(A, driver_id)
    window = city.settings.idempotency_window_s
    assert len(driver.commands) == 1, "its GoOnline, noted when it was handled"
    ((online_at, _),) = driver.commands.values()

    driver.note_command("later", window, datetime.fromtimestamp(online_at + window, UTC))

    assert set(driver.commands) == {"later"}, "the GoOnline's record has left its window"


def test_a_driver_handed_off_carries_each_live_record_once(city: City) -> None:
    driver = city.driver_online_at_home()
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)
    city.drive_to(driver, SF, AFTER_S + 10)
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)

    at_b: Driver = city.get(B, driver)
    assert at_b.epoch == 3
    carried = [
        e
        for e in _events(city, B)
        if e.topic == "dispatch.CommandRecord.Carried" and e.data["command_type"] == "go_online"
    ]
    assert len(carried) == 1, "carried to San Jose once, its id taken the second time"
    assert city.verify() == []


def _events(city: City, shard: int) -> list[Any]:
    source = SqliteLogSource(city.settings.data_dir)
    try:
        return list(source.read(shard))
    finally:
        source.close()


def test_verify_flags_a_driver_command_handled_at_two_shards(city: City) -> None:
    """Made by hand: shard B records, as handled, a command shard A handled (what a retry
    after a hand-off did when records did not travel)."""
    driver = city.driver_online_at_home()
    went_offline = city.send(c.GoOffline(driver_id=driver))
    city.run(A)
    worker = city.engine.workers[B]
    now = datetime.fromtimestamp(city.clock.now, UTC)
    window = city.settings.idempotency_window_s
    record = CommandRecord.record(record_ids(B, went_offline, now, window).current,
                                  went_offline, "go_offline", now, accepted=True,
                                  aggregate_ids=[str(driver)], window_s=window)  # fmt: skip
    worker.app.save(record)

    kinds = [v.kind for v in city.verify()]

    assert kinds == ["duplicate_outcome_across"]


def test_a_carried_record_is_found_where_the_new_shards_clock_runs_behind(tmp_path: Path) -> None:
    """The command is handled just after a window period begins on A's clock; B's clock,
    20 s behind, has not reached that period yet when the retry comes."""
    window, lag, dwell = 600.0, 20.0, 2.0
    city = City(tmp_path, handoff_after_s=dwell, idempotency_window_s=window)
    period = 1_767_600_000.0  # a multiple of 600 s
    city.clock.now = period - 100.0
    a_clock = city.clock
    city.engine.workers[B].clock = lambda: a_clock.now - lag
    driver = city.driver_online_at_home()
    city.clock.now = period - 0.5  # run(A) adds 1 s: handled at period + 0.5
    went_offline = offline_and_back_online(city, driver)
    city.drive_to(driver, SAN_JOSE, dwell + 4)
    assert city.get(B, driver).status == DriverStatus.AVAILABLE
    assert a_clock.now - lag < period

    retry(city, c.GoOffline(driver_id=driver), went_offline, shard=B)
    city.run(B)

    answer = city.outcome(went_offline)
    assert (answer.accepted, answer.duplicate, answer.shard) == (True, True, B)
    assert city.get(B, driver).status == DriverStatus.AVAILABLE


def test_a_hand_off_with_a_record_that_cannot_be_kept_still_hands_the_driver_over(
    city: City,
) -> None:
    driver = city.driver_online_at_home()
    bad = CarriedRecord("cmd-x", "go_online", True, "ok", "", (str(driver),), "", 86_400.0, 1e20)
    good = CarriedRecord("cmd-y", "go_online", True, "ok", "", (str(driver),), "", 86_400.0,
                         city.clock.now - 5)  # fmt: skip
    app = city.engine.workers[B].app
    now = datetime.fromtimestamp(city.clock.now, UTC)

    app.receive(Envelope(A, B, 1, HandOff(str(driver), 1, "Dee", 0, (bad, good))), now)
    app.commit()

    arrived: Driver = city.get(B, driver)
    assert arrived.status == DriverStatus.AVAILABLE
    assert set(arrived.commands) == {"cmd-x", "cmd-y"}, "the far-future one kept at B's time"


def test_a_retry_after_a_hand_off_and_a_restart_of_the_engine_gets_its_first_outcome(
    city: City,
) -> None:
    driver = city.driver_online_at_home()
    went_offline = offline_and_back_online(city, driver)
    city.drive_to(driver, SAN_JOSE, AFTER_S + 10)

    city.engine = build_embedded_engine(city.settings, city.clock)
    retry(city, c.GoOffline(driver_id=driver), went_offline, shard=B)
    city.settle()

    answer = city.outcome(went_offline)
    assert (answer.accepted, answer.duplicate, answer.shard) == (True, True, B)
    assert city.get(B, driver).status == DriverStatus.AVAILABLE
