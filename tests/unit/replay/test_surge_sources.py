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

import pytest
from eventsourcing.persistence import StoredEvent

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.domain.ride import Ride
from dispatch.domain.ride_fare import FareTerms, SurgeSource
from dispatch.domain.surge import RECOMPUTED_TOPIC
from dispatch.log import LogEvent, LogSource
from dispatch.replay import operations as op
from dispatch.replay.fares import explain_fare
from dispatch.replay.surge_sources import SurgeClaims, surge_event, surge_problem
from dispatch.settings import Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.runner import SimConfig
from projections.surge import SurgeProjection

D = Decimal
CELL, OTHER = "8828308281fffff", "8828308283fffff"
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


def test_the_surge_view_keeps_where_each_cells_change_is() -> None:
    projection = SurgeProjection()
    view = projection.apply(projection.initial(), recomputed(1, 40, 100.0, {CELL: "1.60"}))
    inside = view.cell_of(37.7749, -122.4194)
    view = projection.apply(view, recomputed(0, 7, 200.0, {inside: "1.40"}))
    assert view.reading(37.7749, -122.4194) == ("1.40", SurgeSource(inside, 0, 7, 200.0))
    text, source = view.reading(40.0, -100.0)  # a cell never changed
    assert (text, source.shard, source.position, source.at) == ("1.00", None, None, None)


def test_the_terms_carry_the_source_and_terms_from_before_read_without_one() -> None:
    source = SurgeSource(CELL, 1, 40, 100.0)
    data = FareTerms.from_data(TERMS_DATA).to_data()
    data["surge_from"] = source.to_data()
    assert FareTerms.from_data(data).surge_from == source
    assert FareTerms.from_data(TERMS_DATA).surge_from is None  # written before sources


def test_a_surge_the_named_event_gives_is_borne_out() -> None:
    event = recomputed(1, 40, 100.0, {CELL: "1.60", OTHER: "2.00"})
    assert surge_problem(D("1.60"), SurgeSource(CELL, 1, 40, 100.0), event, 150.0) is None
    assert surge_problem(D("1.00"), SurgeSource(CELL), None, 150.0) is None


@pytest.mark.parametrize(
    ("surge", "source", "event", "reason"),
    [
        (D("1.80"), SurgeSource(CELL, 1, 40, 100.0), "yes", "which set 8828308281fffff to 1.60"),
        (D("1.60"), SurgeSource("8828308285fffff", 1, 40, 100.0), "yes", "does not change"),
        (D("1.60"), SurgeSource(CELL, 1, 41, 100.0), None, "the log has none there"),
        (D("1.60"), SurgeSource(CELL, 1, 40, 100.0), "ride", "not a surge event"),
        (D("1.60"), SurgeSource(CELL, 1, 40, 100.0), "late", "later than the ride's request"),
        (D("1.60"), SurgeSource(CELL), None, "names no surge event"),
    ],
)
def test_a_surge_the_log_does_not_bear_out_is_named_with_the_reason(
    surge: Decimal, source: SurgeSource, event: str | None, reason: str
) -> None:
    events = {
        "yes": recomputed(1, 40, 100.0, {CELL: "1.60"}),
        "late": recomputed(1, 40, 500.0, {CELL: "1.60"}),
        "ride": LogEvent(1, 40, RIDE_ID, 1, Ride.Created.TOPIC, 100.0, {}),
    }
    problem = surge_problem(surge, source, events.get(event or ""), 150.0)
    assert problem is not None and reason in problem


def test_the_event_at_a_place_is_read_from_the_log_or_is_none() -> None:
    log = Log(recomputed(1, 40, 100.0, {CELL: "1.60"}), recomputed(1, 42, 130.0, {CELL: "2.0"}))
    found = surge_event(log, 1, 40)
    assert found is not None and found.position == 40
    assert surge_event(log, 1, 41) is None  # no event there (the next is at 42)
    assert surge_event(log, 3, 40) is None  # no such shard
    assert surge_event(log, 1, 0) is None


def test_verify_flags_a_ride_whose_surge_the_named_event_does_not_give() -> None:
    honest = ride_requested(0, 5, D("1.60"), SurgeSource(CELL, 1, 40, 100.0))
    forged = ride_requested(0, 6, D("2.40"), SurgeSource(CELL, 1, 40, 100.0))
    claims = SurgeClaims()
    for e in (honest, forged, recomputed(1, 40, 100.0, {CELL: "1.60"})):
        claims.see(e)
    log = Log(honest, forged, recomputed(1, 40, 100.0, {CELL: "1.60"}))
    problems = claims.problems(log)
    assert [(c.where, p.split(",")[0]) for c, p in problems] == [
        ("0:6", "surge 2.40 names the event at 1:40")
    ]


def test_a_simulated_city_s_surged_fares_name_their_events_and_verify_agrees(
    tmp_path: Path,
) -> None:
    config = SimConfig(drivers=5, minutes=6, seed=3, demand_per_min=40, warmup_minutes=1)
    simulate_embedded(config, Settings(data_dir=tmp_path))
    log = SqliteLogSource(tmp_path)
    surged = []
    for e in op.read_all(log):
        if e.topic == Ride.Created.TOPIC and D(e.data["fare"]["surge"]) > 1:
            surged.append(FareTerms.from_data(e.data["fare"]))
    assert surged, "the market is short of drivers: some rides surge"
    assert all(t.surge_from is not None and t.surge_from.shard is not None for t in surged)
    _, violations = op.verify(log)
    assert [v for v in violations if v.kind == "surge_unexplained"] == []
    assert violations == []


def test_replay_fare_shows_the_events_row_and_disagrees_when_it_does_not_give_the_surge() -> None:
    event = recomputed(1, 40, 100.0, {CELL: "1.60"})
    terms = replace(FareTerms.from_data(TERMS_DATA), surge=D("1.60"),
                    surge_from=SurgeSource(CELL, 1, 40, 100.0))  # fmt: skip
    explained = explain_fare(requested_events(terms), event)
    line = next(x for x in explained.lines if x.startswith("surge source"))
    assert "set by the event at 1:40 (dispatch.Surge.Recomputed" in line
    assert "1.00 -> 1.60, target 1.60, demand 9, supply 2 over 300 s" in line
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


def ride_requested(shard: int, position: int, surge: Decimal, source: SurgeSource) -> LogEvent:
    terms = replace(FareTerms.from_data(TERMS_DATA), surge=surge, surge_from=source)
    data = {"fare": terms.to_data(), "rider_id": RIDE_ID}
    return LogEvent(shard, position, RIDE_ID, 1, Ride.Created.TOPIC, 150.0, data)


def requested_events(terms: FareTerms) -> list[object]:
    from datetime import UTC, datetime

    from dispatch.domain.geo import Point
    from dispatch.domain.ids import new_id

    at = datetime.fromtimestamp(150.0, UTC)
    ride = Ride.request(new_id(0), new_id(0), Point(37.77, -122.42), Point(37.80, -122.42),
                        300, at, terms)  # fmt: skip
    return list(ride.collect_events())
