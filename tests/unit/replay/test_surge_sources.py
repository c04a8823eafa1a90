"""A fare names the surge event its surge came from, and the log bears it out: the surge
view keeps where each cell's change is; the terms and a quote carry it; ``replay verify``
flags a ride whose surge the named event does not give (``surge_unexplained``); ``replay
fare`` shows the event's row for the cell and disagrees when it does not give the surge."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import h3
import pytest
from eventsourcing.persistence import StoredEvent

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_personal
from dispatch.domain.ride import Ride
from dispatch.domain.ride_fare import FareTerms, SurgeSource
from dispatch.domain.surge import RECOMPUTED_TOPIC, SURGE_RESOLUTION
from dispatch.log import LogEvent, LogSource
from dispatch.replay import operations as op
from dispatch.replay.fares import explain_fare
from dispatch.replay.surge_sources import pickup_cells, surge_events, surge_problem
from dispatch.settings import Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.runner import SimConfig
from projections.surge import SurgeProjection

D = Decimal
SURGE_ID = "00000000-0000-4000-8000-00000000000a"
RIDE_ID = "00000000-0000-4000-8000-00000000000b"


def recomputed(shard: int, position: int, at: float, rows: dict[str, str]) -> LogEvent:
    n = len(rows)
    data = {"cells": list(rows), "multipliers": list(rows.values()), "previous": ["1.00"] * n,
            "targets": list(rows.values()), "demand": [9] * n, "supply": [2] * n,
            "window_s": 300.0, "curve": {}}  # fmt: skip
    return LogEvent(shard, position, SURGE_ID, position, RECOMPUTED_TOPIC, at, data)


class Log(LogSource):
    """A log in memory, by shard."""

    def __init__(self, *events: LogEvent) -> None:
        self.events = events

    def shards(self) -> list[int]:
        return sorted({e.shard for e in self.events})

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        return iter([e for e in self.events if e.shard == shard and e.position > after])

    def head(self, shard: int) -> int | None:
        return max((e.position for e in self.events if e.shard == shard), default=0)

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        return []

    def close(self) -> None:
        pass


PICKUP = (37.7749, -122.4194)
CELL = h3.latlng_to_cell(*PICKUP, SURGE_RESOLUTION)  # the pickup's surge cell
NEAR = next(c for c in h3.grid_ring(CELL, 1))  # a neighbour
FAR = next(c for c in h3.grid_ring(CELL, 5))


def test_the_surge_view_keeps_where_each_cells_change_is() -> None:
    projection = SurgeProjection()
    view = projection.apply(projection.initial(), recomputed(1, 40, 100.0, {FAR: "1.60"}))
    view = projection.apply(view, recomputed(0, 7, 200.0, {CELL: "1.40"}))
    assert view.reading(*PICKUP) == ("1.40", SurgeSource(0, 7, 200.0))
    assert view.reading(40.0, -100.0) == ("1.00", SurgeSource())  # a cell never changed


def test_the_terms_carry_the_event_and_not_the_cell() -> None:
    """The cell would say where the rider was, unsealed: it is found from the pickup."""
    data = FareTerms.from_data(TERMS_DATA).to_data()
    data["surge_from"] = SurgeSource(1, 40, 100.0).to_data()
    assert data["surge_from"] == {"event": {"shard": 1, "position": 40, "at": 100.0}}
    assert FareTerms.from_data(data).surge_from == SurgeSource(1, 40, 100.0)
    assert FareTerms.from_data(TERMS_DATA).surge_from is None  # written before sources


@pytest.mark.parametrize(
    "event",
    [
        {"shard": 1, "position": 40, "at": float("nan")},
        {"shard": 1, "position": 40, "at": float("inf")},
        {"shard": 1, "position": 2**70, "at": 1.0},
        {"shard": -1, "position": 40, "at": 1.0},
        {"shard": 1.5, "position": 40, "at": 1.0},
    ],
)
def test_a_source_out_of_range_is_refused_before_it_reaches_the_log(
    event: dict[str, Any],
) -> None:
    """A NaN written to the log would leave the shard unreadable; a position past 2**63
    would stop verify: the command's schema and the domain both refuse them."""
    from pydantic import ValidationError

    from schemas.fares import FareTermsData

    fare = TERMS_DATA | {"surge_from": {"event": event}}
    with pytest.raises(ValidationError):
        FareTermsData.model_validate(fare)
    with pytest.raises(ValueError, match="out of range"):
        FareTerms.from_data(fare)


def test_a_surge_the_named_event_gives_at_the_pickups_cell_is_borne_out() -> None:
    event = recomputed(1, 40, 100.0, {CELL: "1.60", FAR: "2.00"})
    cells = pickup_cells(PICKUP, quoted=False)
    assert surge_problem(D("1.60"), SurgeSource(1, 40, 100.0), event, 150.0, cells) is None
    assert surge_problem(D("1.00"), SurgeSource(), None, 150.0, cells) is None
    # quoted: the quote's pickup may be a few metres off, in a neighbouring cell
    near = recomputed(1, 40, 100.0, {NEAR: "1.60"})
    quoted = pickup_cells(PICKUP, quoted=True)
    assert surge_problem(D("1.60"), SurgeSource(1, 40, 100.0), near, 150.0, quoted) is None
    # an erased pickup: any row of the event giving the multiplier
    assert surge_problem(D("2.00"), SurgeSource(1, 40, 100.0), event, 150.0, None) is None


@pytest.mark.parametrize(
    ("surge", "source", "event", "reason"),
    [
        (D("1.80"), SurgeSource(1, 40, 100.0), "yes", "does not set the pickup's surge cell"),
        (D("2.00"), SurgeSource(1, 40, 100.0), "far", "does not set the pickup's surge cell"),
        (D("1.60"), SurgeSource(1, 41, 100.0), None, "the log has none there"),
        (D("1.60"), SurgeSource(1, 40, 100.0), "ride", "not a surge event"),
        (D("1.60"), SurgeSource(1, 40, 500.0), "late", "later than the ride's request"),
        (D("1.60"), SurgeSource(1, 40, -12345.0), "yes", "which is at 100.0"),
        (D("1.60"), SurgeSource(), None, "names no surge event"),
    ],
)
def test_a_surge_the_log_does_not_bear_out_is_named_with_the_reason(
    surge: Decimal, source: SurgeSource, event: str | None, reason: str
) -> None:
    events = {
        "yes": recomputed(1, 40, 100.0, {CELL: "1.60"}),
        "far": recomputed(1, 40, 100.0, {CELL: "1.60", FAR: "2.00"}),
        "late": recomputed(1, 40, 500.0, {CELL: "1.60"}),
        "ride": LogEvent(1, 40, RIDE_ID, 1, Ride.Created.TOPIC, 100.0, {}),
    }
    cells = pickup_cells(PICKUP, quoted=False)
    at = 500.0 - 61.0 if event == "late" else 150.0  # "late": a minute past the request
    problem = surge_problem(surge, source, events.get(event or ""), at, cells)
    assert problem is not None and reason in problem


def test_a_surge_event_up_to_a_minute_after_the_request_is_clock_skew() -> None:
    """The surge event and the ride may be recorded by shards whose clocks differ."""
    event = recomputed(1, 40, 100.010, {CELL: "1.60"})
    cells = pickup_cells(PICKUP, quoted=False)
    assert surge_problem(D("1.60"), SurgeSource(1, 40, 100.010), event, 100.0, cells) is None


def test_the_events_named_are_read_once_per_shard_and_a_place_without_one_is_left_out() -> None:
    log = Log(recomputed(1, 40, 100.0, {CELL: "1.60"}), recomputed(1, 42, 130.0, {CELL: "2.0"}))
    found = surge_events(log, {(1, 40), (1, 41), (1, 42), (3, 40)})
    assert sorted(found) == [(1, 40), (1, 42)]


def test_verify_flags_a_ride_whose_surge_the_named_event_does_not_give(tmp_path: Path) -> None:
    """Through ``replay verify`` itself, on a real log: a simulated city whose requested
    events are read back with one ride's surge raised above what its event gave."""
    config = SimConfig(drivers=5, minutes=6, seed=3, demand_per_min=40, warmup_minutes=1)
    simulate_embedded(config, Settings(data_dir=tmp_path))
    real = SqliteLogSource(tmp_path)
    events = list(op.read_all(real))
    surged = [e for e in events if e.topic == Ride.Created.TOPIC
              and D(e.data["fare"]["surge"]) > 1]  # fmt: skip
    assert surged, "the market is short of drivers: some rides surge"
    for e in surged:
        terms = FareTerms.from_data(e.data["fare"])
        assert terms.surge_from is not None and terms.surge_from.shard is not None
    personal = build_personal(Settings(data_dir=tmp_path))  # opens the sealed pickups
    assert op.verify(real, open=personal.open)[1] == []

    forged = surged[0]
    fare = forged.data["fare"] | {"surge": "2.95"}
    tampered = [replace(e, data=e.data | {"fare": fare}) if e is forged else e for e in events]
    (violation,) = op.verify(Log(*tampered), open=personal.open)[1]
    assert (violation.kind, violation.position) == ("surge_unexplained", forged.where)
    assert "does not set the pickup's surge cell to it" in violation.detail
    (sealed,) = op.verify(Log(*tampered))[1]  # pickups not opened: any cell of the event
    assert "does not set any cell to it" in sealed.detail


def test_replay_fare_shows_the_events_row_and_disagrees_when_it_does_not_give_the_surge() -> None:
    event = recomputed(1, 40, 100.0, {CELL: "1.60"})
    terms = replace(FareTerms.from_data(TERMS_DATA), surge=D("1.60"),
                    surge_from=SurgeSource(1, 40, 100.0))  # fmt: skip
    explained = explain_fare(requested_events(terms), event)
    line = next(x for x in explained.lines if x.startswith("surge source"))
    assert "the event at 1:40 (dispatch.Surge.Recomputed" in line
    assert f"cell {CELL} 1.00 -> 1.60, target 1.60, demand 9, supply 2 over 300 s" in line
    assert explained.agrees is None  # not completed: no fare to price again
    wrong = explain_fare(requested_events(replace(terms, surge=D("2.00"))), event)
    assert wrong.agrees is False
    assert any(x.startswith("surge does not agree with the log") for x in wrong.lines)


TERMS_DATA: dict[str, Any] = {
    "product": "standard", "market": "san-francisco", "rules_version": "sha256:0123",
    "currency": "USD",
    "rule": {"base": "2.50", "per_km": "1.10", "per_min": "0.30", "minimum": "7.00"},
    "surge": "1.00", "quote": None, "road_factor": "1.35",
}  # fmt: skip


def requested_events(terms: FareTerms) -> list[object]:
    from datetime import UTC, datetime

    from dispatch.domain.geo import Point
    from dispatch.domain.ids import new_id

    at = datetime.fromtimestamp(150.0, UTC)
    ride = Ride.request(new_id(0), new_id(0), Point(*PICKUP), Point(37.80, -122.42),
                        300, at, terms)  # fmt: skip
    return list(ride.collect_events())


def test_the_replay_fare_command_reads_the_named_event_from_the_log(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dispatch.cli import app

    config = SimConfig(drivers=5, minutes=6, seed=3, demand_per_min=40, warmup_minutes=1)
    simulate_embedded(config, Settings(data_dir=tmp_path))
    ride = next(e.aggregate_id for e in op.read_all(SqliteLogSource(tmp_path))
                if e.topic == Ride.Created.TOPIC and D(e.data["fare"]["surge"]) > 1)  # fmt: skip
    result = CliRunner().invoke(app, ["replay", "fare", ride, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("surge source"))
    assert "(dispatch.Surge.Recomputed," in line and " -> " in line  # the event's row, read


def test_a_cell_back_at_1_names_no_event() -> None:
    """The few cells one event cooled to 1.00 would say where a calm ride's rider was."""
    projection = SurgeProjection()
    view = projection.apply(projection.initial(), recomputed(1, 40, 100.0, {CELL: "1.60"}))
    view = projection.apply(view, recomputed(1, 41, 400.0, {CELL: "1.00"}))
    assert view.reading(*PICKUP) == ("1.00", SurgeSource())


def test_a_damaged_pickup_leaves_the_cell_unchecked() -> None:
    assert pickup_cells((float("nan"), 0.0), quoted=False) is None
    assert pickup_cells(None, quoted=True) is None


def test_a_source_that_does_not_read_is_flagged_by_verify_and_by_replay_fare() -> None:
    """Only a forged log (or one of an earlier version) can hold one: the schema and the
    domain refuse it on the way in."""
    source = {"event": {"shard": 1, "position": 40, "at": "x"}}
    fare = TERMS_DATA | {"surge": "1.60", "surge_from": source}
    data = {"fare": fare, "rider_id": RIDE_ID, "pickup": list(PICKUP),
            "dropoff": [37.8, -122.42], "expires_at": "2026-01-05T08:05:00+00:00"}  # fmt: skip
    ride = LogEvent(0, 1, RIDE_ID, 1, Ride.Created.TOPIC, 150.0, data)
    (violation,) = [v for v in op.verify(Log(ride))[1] if v.kind == "surge_unexplained"]
    assert "do not read" in violation.detail

    events = requested_events(FareTerms.from_data(TERMS_DATA))
    events[0] = replace_fare(events[0], fare)
    explained = explain_fare(events)
    assert explained.agrees is False
    assert any("its fare terms do not read" in line for line in explained.lines)


def replace_fare(event: Any, fare: dict[str, Any]) -> Any:
    event.__dict__["fare"] = fare
    return event
