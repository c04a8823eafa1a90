"""Surge per H3 cell, decided by the shard's single writer on its clock: requests without
drivers raise the pickup cell's multiplier at the cadence, each change is an event with its
inputs, the multipliers survive a restart, and the cell goes back to 1.00 when its demand
leaves the window."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h3
import pytest
from typer.testing import CliRunner

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_embedded_engine
from dispatch.cli import app
from dispatch.domain.ids import new_id
from dispatch.domain.surge import SURGE_RESOLUTION, Surge, SurgeChange, recorded_changes, surge_id
from dispatch.matching.decisions import ChangeSurge
from dispatch.messages import Ping
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from projections.surge import SurgeProjection
from schemas import commands as c
from schemas.common import LatLng

T0 = 1_767_600_000.0
PICKUP = (37.77, -122.42)
CELL = h3.latlng_to_cell(*PICKUP, SURGE_RESOLUTION)
CURVE: dict[str, str | float] = {"cap": "3.00", "gain": 0.5, "smoothing": 0.5, "band": "0.10",
                                 "noise": 0.0}  # fmt: skip


class Market:
    def __init__(self, tmp: Path, **settings: Any) -> None:
        self.now, self.tmp, self.settings = T0, tmp, settings
        self.changes: list[SurgeChange] = []  # each cell's, in order
        self.engine = self._engine()

    def _engine(self) -> EmbeddedEngine:
        settings = Settings(data_dir=self.tmp, **{"shards": 1, "max_wait_s": 600, **self.settings})
        engine = build_embedded_engine(settings, lambda: self.now)
        engine.workers[0].listeners.append(self._heard)
        return engine

    def _heard(self, _shard: int, recordings: Any) -> None:
        for r in recordings:
            if isinstance(r.domain_event, Surge.Recomputed):
                self.changes += r.domain_event.changes()

    def restart(self) -> None:
        self.engine = self._engine()

    def send(self, command: c.Command) -> None:
        at = datetime.fromtimestamp(self.now, UTC)
        env = c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=at, command=command)
        self.engine.transport.send_command(env)
        self.engine.run_once()

    def requests(self, count: int, at: tuple[float, float] = PICKUP) -> None:
        for _ in range(count):
            rider, ride = new_id(0), new_id(0)
            self.send(c.RegisterRider(rider_id=rider, name="r"))
            pickup = LatLng(lat=at[0], lng=at[1])
            dropoff = LatLng(lat=37.8, lng=-122.4)
            self.send(c.RequestRide(ride_id=ride, rider_id=rider, pickup=pickup, dropoff=dropoff))

    def drivers(self, count: int, lat: float, lng: float) -> None:
        for _ in range(count):
            d = new_id(0)
            self.send(c.RegisterDriver(driver_id=d, name="d"))
            self.send(c.GoOnline(driver_id=d))
            self.engine.transport.send_pings([Ping(d, lat, lng, self.now)])
            self.engine.run_once()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.engine.run_once()

    @property
    def levels(self) -> dict[str, str]:
        surge = self.engine.workers[0].matcher.surge
        assert surge is not None
        return surge.levels()  # type: ignore[attr-defined]


def test_requests_without_drivers_raise_the_pickup_cells_surge_at_the_cadence(tmp_path) -> None:
    market = Market(tmp_path)
    market.advance(1)  # the first tick starts the cadence's clock
    market.requests(5)
    market.advance(10)
    assert market.changes == []  # not before the cadence
    market.advance(25)
    (change,) = market.changes
    # pressure 5 / (0 + 1) = 5: target 1 + 0.5 x 4 = 3.00; half the gap less the band is left
    assert (change.cell, change.multiplier, change.previous, change.target) == (
        CELL, "2.10", "1.00", "3.00",
    )  # fmt: skip
    assert (change.demand, change.supply, change.window_s) == (5, 0, 300.0)
    assert market.engine.workers[0].app.surge_levels() == {CELL: "2.10"}
    market.advance(30)
    assert [ch.multiplier for ch in market.changes] == ["2.10", "2.65"]


def test_the_multipliers_survive_a_restart(tmp_path) -> None:
    market = Market(tmp_path)
    market.advance(1)
    market.requests(5)
    market.advance(31)
    assert market.levels == {CELL: "2.10"}
    market.restart()
    assert market.levels == {CELL: "2.10"}
    assert market.engine.workers[0].app.surge_levels() == {CELL: "2.10"}


def test_supply_in_the_cell_holds_the_surge_down(tmp_path) -> None:
    market = Market(tmp_path, ping_ttl_s=120)
    market.advance(1)
    market.drivers(10, 37.7701, -122.4201)  # the same surge cell
    market.requests(5)  # 5 drivers are offered a ride (not available), 5 stay free
    market.advance(31)
    assert market.changes == []  # pressure 5 / (5 + 1): no surge
    market.requests(10)  # 5 more are offered one: 10 requests wait for no driver
    market.advance(30)
    (change,) = market.changes
    assert (change.demand, change.supply, change.target) == (15, 0, "3.00")


def test_a_cell_goes_back_to_one_when_its_demand_leaves_the_window(tmp_path) -> None:
    market = Market(tmp_path, surge_window_s=60)
    market.advance(1)
    market.requests(5)
    for _ in range(8):
        market.advance(30)
    assert market.changes[-1].multiplier == "1.00"
    assert market.levels == {}
    assert market.changes[-1].demand == 0


def test_surge_off_records_nothing(tmp_path) -> None:
    market = Market(tmp_path, surge_cadence_s=0)
    market.advance(1)
    market.requests(5)
    market.advance(61)
    assert market.changes == []
    assert market.engine.workers[0].matcher.surge is None


def test_the_surge_view_folded_from_the_log_agrees_with_the_shard(tmp_path) -> None:
    market = Market(tmp_path)
    market.advance(1)
    market.requests(5)
    market.advance(31)
    market.advance(30)
    projection = SurgeProjection()
    view = projection.initial()
    for event in SqliteLogSource(tmp_path).read(0):
        if event.topic in projection.topics:
            view = projection.apply(view, event)
    assert view.layer() == market.levels == {CELL: "2.65"}
    assert view.multiplier(*PICKUP) == "2.65"
    assert view.multiplier(37.70, -122.48) == "1.00"


def test_replay_state_at_shows_the_surge_of_a_past_time(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DISPATCH_SHARDS", "1")
    market = Market(tmp_path)
    market.advance(1)
    market.requests(5)
    market.advance(31)  # 2.10 at T0 + 32
    first = market.now
    market.advance(30)  # 2.65 at T0 + 62

    def state_at(at: float, *more: str) -> Any:
        moment = datetime.fromtimestamp(at, UTC).isoformat()
        args = ["replay", "state", "--at", moment, "--data-dir", str(tmp_path), "--json", *more]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert state_at(first - 1)["surge"] == {}
    assert state_at(first)["surge"] == {CELL: "2.10"}
    assert state_at(market.now)["surge"] == {CELL: "2.65"}
    place = state_at(first, "--lat", str(PICKUP[0]), "--lng", str(PICKUP[1]))
    assert (place["cell"], place["multiplier"]) == (CELL, "2.10")
    where = ["--data-dir", str(tmp_path), "--lat", "91", "--lng", "0"]
    refused = CliRunner().invoke(app, ["replay", "state", "--at", "2026-01-05T08:00:00", *where])
    assert refused.exit_code == 2 and "latitude" in refused.output


def test_a_restore_from_a_checkpoint_keeps_the_multipliers_and_the_windows_demand(
    tmp_path,
) -> None:
    market = Market(tmp_path, checkpoint_every_events=5, checkpoint_chunk_rows=1_000)
    market.advance(1)
    market.requests(5)
    market.advance(31)
    market.advance(1)  # a batch after the change: a checkpoint covers it
    market.restart()
    assert market.engine.workers[0].restored_from is not None  # from a checkpoint
    assert market.levels == {CELL: "2.10"}
    market.advance(1)  # the first tick after a start only starts the cadence's clock
    market.advance(30)
    # the 5 requests still waiting came back with the checkpoint's rides: still demand
    assert [(ch.multiplier, ch.demand) for ch in market.changes][-1] == ("2.65", 5)


def test_the_shards_surge_is_snapshotted_as_it_is_after_the_batch() -> None:
    """One event a cadence: the 19th cadence that moves cells is the surge's 20th event
    (after its start), where its snapshot falls, taken from the cached aggregate."""
    app = ShardApplication(0, env={"IS_SNAPSHOTTING_ENABLED": "y"})
    cells = sorted(h3.grid_disk(CELL, 20))[:1_200]
    n = len(cells)
    for cadence in range(19):
        at = datetime.fromtimestamp(T0 + 30 * cadence, UTC)
        level = ["1.50", "1.60"][cadence % 2]
        change = ChangeSurge(cells, [level] * n, ["2.00"] * n, [9] * n, [1] * n, 300.0, CURVE)
        app.decide(change, at)
        app.commit()
    assert app.snapshots is not None
    (snapshot,) = app.snapshots.get(surge_id(0))
    assert snapshot.originator_version == 20
    app.discard()  # a cold read starts from it
    assert app.surge_levels() == dict.fromkeys(cells, "1.50")


def _expired_then_restarted(
    tmp: Path, restart: bool, noise: float = 0.0
) -> tuple[Market, list[Any]]:
    """The review's scenario: 5 requests in a cell without drivers expire (the shortage
    signal), one more comes, then the shard restarts from a checkpoint (or not)."""
    market = Market(tmp, max_wait_s=60, checkpoint_every_events=5, checkpoint_chunk_rows=1_000,
                    surge_noise=noise)  # fmt: skip
    market.advance(1)
    market.requests(5)
    market.advance(31)  # 2.10
    market.advance(40)  # the 5 requests expire (60 s wait)
    market.advance(1)
    market.requests(1)
    market.advance(1)
    if restart:
        market.restart()
        assert market.engine.workers[0].restored_from is not None  # from a checkpoint
    market.advance(1)
    market.advance(30)
    market.advance(30)
    return market, [
        (ch.cell, ch.multiplier, ch.previous, ch.target, ch.demand, ch.supply)
        for ch in market.changes
    ]


def test_a_restore_from_a_checkpoint_prices_exactly_as_a_shard_that_never_stopped(
    tmp_path,
) -> None:
    """The window's demand includes requests whose rides ended (expired) before the
    checkpoint: the checkpoint carries the window, so the restored shard records the same
    changes, with the same demand, as one that never stopped."""
    _, steady = _expired_then_restarted(tmp_path / "steady", restart=False)
    restored, after = _expired_then_restarted(tmp_path / "restored", restart=True)
    assert [c[1] for c in steady] == ["2.10", "2.65", "2.93"]
    assert steady[-1][4] == 6  # the 5 expired requests and the new one are the window's
    # the restored shard heard only the changes after its restart
    assert after[-len(restored.changes) :] == steady[-len(restored.changes) :]
    assert len(restored.changes) >= 1


def test_with_the_noise_band_a_restored_shard_still_prices_as_one_that_never_stopped(
    tmp_path,
) -> None:
    """The noise band keeps no state of its own (the level and the window's demand are all
    it reads), so a restore records the same changes as the shard that never stopped."""
    _, steady = _expired_then_restarted(tmp_path / "steady", restart=False, noise=1.0)
    restored, after = _expired_then_restarted(tmp_path / "restored", restart=True, noise=1.0)
    # 5 requests, no driver: 2.10; 6 then sit within one deviation of what 2.65 implies
    assert [c[1] for c in steady] == ["2.10", "2.65"]
    assert after[-len(restored.changes) :] == steady[-len(restored.changes) :]


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_every_recorded_change_re_derives_from_its_recorded_inputs_and_verify_agrees(
    tmp_path, noise: float
) -> None:
    """Random demand in a few cells, drivers in one, many cadences: each Surge.Changed
    records the curve, and its multiplier and target follow from its previous level,
    demand, supply and curve alone; ``replay verify``'s checker finds nothing, and finds a
    change whose recorded multiplier was altered."""
    import random

    from dispatch.invariants import InvariantChecker
    from dispatch.pricing.surge import rederive

    rng = random.Random(7)
    market = Market(tmp_path, surge_window_s=90, max_wait_s=45, ping_ttl_s=3_600,
                    surge_noise=noise)  # fmt: skip
    market.advance(1)
    market.drivers(3, *PICKUP)
    for _ in range(12):
        for _ in range(rng.randrange(0, 6)):
            market.requests(1)
        market.advance(30)
    events = list(SqliteLogSource(tmp_path).read(0))
    assert not [e for e in events if e.topic == Surge.Changed.TOPIC]  # (older logs only)
    changes = [e for e in events if e.topic == Surge.Recomputed.TOPIC]
    rows = [row for e in changes for row in recorded_changes(e.topic, e.data)]
    assert len(rows) >= 4
    for row in rows:
        assert row.curve == {
            "cap": "3.00",
            "gain": 0.5,
            "smoothing": 0.5,
            "band": "0.10",
            "noise": noise,
        }
        assert rederive(row.previous, row.demand, row.supply, row.curve) == (
            row.multiplier, row.target,
        )  # fmt: skip
    checker = InvariantChecker()
    for e in events:
        checker.check(e)
    assert checker.finish() == []
    bent = InvariantChecker()
    for e in events:
        if e is changes[-1]:
            targets = [*e.data["targets"][:-1], "2.99"]
            e = replace(e, data={**e.data, "targets": targets})
        bent.check(e)
    assert [v.kind for v in bent.finish()] == ["surge_not_rederived"]


def test_a_window_shorter_than_the_cadence_is_refused_at_start() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="SURGE_WINDOW_S"):
        Settings(surge_cadence_s=30, surge_window_s=10)
    assert Settings(surge_cadence_s=0, surge_window_s=10).surge_window_s == 10  # surge off


@pytest.mark.parametrize("cells", [80, 300])
def test_a_restore_loads_more_surging_cells_than_the_trackers_arrays_first_hold(
    tmp_path, cells: int
) -> None:
    """Many cells surge, their requests leave the window while their levels still decay,
    and a checkpoint is taken after the last ``Recomputed``: the restore's ``load`` gives
    the fresh tracker a row for each (past rows 64, 128, 256) and every level."""
    market = Market(tmp_path, checkpoint_every_events=5, checkpoint_chunk_rows=1_000,
                    surge_window_s=60)  # fmt: skip
    market.advance(1)
    surging = sorted(h3.grid_disk(CELL, 10))[:cells]
    for cell in surging:
        market.requests(3, h3.cell_to_latlng(cell))
    market.advance(31)  # the cells surge (1.60)
    market.advance(30)  # the requests left the 60 s window: the levels come down (1.20)
    before = market.levels
    assert len(before) == cells and all(level != "1.00" for level in before.values())
    for _ in range(6):  # a checkpoint after the last Recomputed: no tail to fold
        market.send(c.RegisterRider(rider_id=new_id(0), name="r"))
    market.restart()
    worker = market.engine.workers[0]
    assert worker.restored_from is not None  # from a checkpoint
    assert worker.app.surge_levels() == before
    assert market.levels == before


def test_a_shock_past_the_event_bound_is_recorded_as_events_every_kafka_record_can_hold() -> None:
    """A cadence moving about 51,000 cells (past the ~23,500 one 1 MB message could hold):
    recorded as events of at most ``MAX_RECOMPUTED_ROWS`` rows each, in one batch, each
    encoded into Kafka records of at most ``MAX_RECORD_BYTES``; a cold read gives back
    every level."""
    from dispatch.adapters.kafka.eventstore.codec import MAX_RECORD_BYTES, encode_events
    from dispatch.domain.surge import MAX_RECOMPUTED_ROWS

    app = ShardApplication(0)
    cells = sorted(h3.grid_disk(CELL, 130))
    n = len(cells)
    assert n > 10 * MAX_RECOMPUTED_ROWS
    at = datetime.fromtimestamp(T0, UTC)
    app.decide(ChangeSurge(cells, ["2.10"] * n, ["3.00"] * n, [40] * n, [30] * n, 300.0, CURVE),
               at)  # fmt: skip
    app.commit()
    stored = app.repository.event_store.recorder.select_events(surge_id(0))
    parts = [s for s in stored if s.topic == Surge.Recomputed.TOPIC]
    assert len(parts) == -(-n // MAX_RECOMPUTED_ROWS)  # 11
    assert max(len(s.state) for s in parts) < 260_000  # ~44.5 bytes a row, 5,000 rows
    records = encode_events(stored)
    assert all(len(r.value) <= MAX_RECORD_BYTES for r in records)
    assert sum(r.event_count for r in records) == len(stored)
    app.discard()  # a cold read folds every part
    assert app.surge_levels() == dict.fromkeys(cells, "2.10")


def test_a_cadence_split_into_several_events_is_read_alike_by_every_reader(
    tmp_path, monkeypatch
) -> None:
    """With the bound lowered to 7 rows, a cadence moving 20 cells is 3 ``Recomputed``
    events at the same time: the aggregate, the matcher's fold (live and after a restart
    from the log), the surge view, ``replay state --at`` and ``replay verify`` each read
    the 20 changes, as they would one event."""
    import dispatch.domain.surge as surge_module
    from dispatch.invariants import InvariantChecker

    monkeypatch.setenv("DISPATCH_SHARDS", "1")
    monkeypatch.setattr(surge_module, "MAX_RECOMPUTED_ROWS", 7)
    market = Market(tmp_path)
    market.advance(1)
    surging = sorted(h3.grid_disk(CELL, 3))[:20]
    for cell in surging:
        market.requests(5, h3.cell_to_latlng(cell))
    market.advance(31)
    first = market.now
    market.advance(30)
    expected = dict.fromkeys(surging, "2.65")
    assert market.levels == expected  # the matcher folded each part back
    assert market.engine.workers[0].app.surge_levels() == expected
    events = list(SqliteLogSource(tmp_path).read(0))
    parts = [e for e in events if e.topic == Surge.Recomputed.TOPIC]
    assert [len(e.data["cells"]) for e in parts] == [7, 7, 6, 7, 7, 6]
    assert len({e.at for e in parts[:3]}) == 1 and parts[0].at == first
    checker = InvariantChecker()
    for e in events:
        checker.check(e)
    assert checker.finish() == []
    view = SurgeProjection().initial()
    for e in events:
        if e.topic in SurgeProjection.topics:
            view = SurgeProjection().apply(view, e)
    assert view.layer() == expected
    moment = datetime.fromtimestamp(first, UTC).isoformat()
    result = CliRunner().invoke(app, ["replay", "state", "--at", moment, "--data-dir",
                                      str(tmp_path), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["surge"] == dict.fromkeys(surging, "2.10")
    result = CliRunner().invoke(app, ["replay", "verify", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    market.restart()  # no checkpoint: the matcher folds the whole log, every part
    assert market.engine.workers[0].restored_from is None
    assert market.levels == expected


@pytest.mark.parametrize(
    ("bend", "kinds"),
    [
        (lambda d: {**d, "curve": None}, ["surge_not_rederivable"]),
        (lambda d: {k: v for k, v in d.items() if k != "curve"}, ["surge_not_rederivable"]),
        (lambda d: {**d, "supply": d["supply"][:-1]}, ["surge_columns_misaligned"]),
        (lambda d: {k: v for k, v in d.items() if k != "targets"}, ["surge_columns_misaligned"]),
    ],
    ids=["curve-null", "curve-missing", "short-column", "missing-column"],
)
def test_verify_reports_a_recomputed_it_cannot_check_as_a_violation(
    tmp_path, monkeypatch, bend: Any, kinds: list[str]
) -> None:
    """A ``Recomputed`` without its curve (null or left out) cannot be re-derived: reported,
    not passed; one whose columns do not line up is reported, not a crash of the checker
    (nor of ``replay verify``)."""
    from dispatch.invariants import InvariantChecker

    monkeypatch.setenv("DISPATCH_SHARDS", "1")
    market = Market(tmp_path)
    market.advance(1)
    market.requests(5)
    market.requests(3, h3.cell_to_latlng(sorted(h3.grid_ring(CELL, 2))[0]))
    market.advance(31)
    events = list(SqliteLogSource(tmp_path).read(0))
    (recomputed,) = [e for e in events if e.topic == Surge.Recomputed.TOPIC]
    assert len(recomputed.data["cells"]) == 2
    checker = InvariantChecker()
    for e in events:
        checker.check(e if e is not recomputed else replace(e, data=bend(e.data)))
    assert [v.kind for v in checker.finish()] == kinds
