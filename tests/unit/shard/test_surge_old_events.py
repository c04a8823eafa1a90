"""A log written before ``Surge.Recomputed`` (one ``Surge.Changed`` a cell, version 2 or 1)
still loads and is explained: the aggregate and the shard's tracker carry on from it, the
next cadence's ``Recomputed`` starts from its levels, ``replay verify`` re-derives its
changes, ``replay state --at`` and the surge view read them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from test_surge_per_cell import CELL, PICKUP, Market
from typer.testing import CliRunner

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.cli import app
from dispatch.domain.surge import NO_SURGE_TEXT, Surge, recorded_changes, surge_id
from dispatch.invariants import InvariantChecker
from dispatch.pricing.surge import rederive
from projections.surge import SurgeProjection


def _one_event_a_cell(
    self: Surge,
    cells: list[str],
    multipliers: list[str],
    targets: list[str],
    demand: list[int],
    supply: list[int],
    window_s: float,
    at: datetime,
    curve: dict[str, str | float] | None = None,
) -> None:
    """What a shard recorded before ``Recomputed``: a ``Changed`` (version 2) a cell."""
    for cell, multiplier, target, d, s in zip(cells, multipliers, targets, demand, supply,
                                              strict=True):  # fmt: skip
        previous = self.cells.get(cell, NO_SURGE_TEXT)
        if multiplier != previous:
            self.trigger_event(Surge.Changed, timestamp=at, cell=cell, multiplier=multiplier,
                               previous=previous, target=target, demand=d, supply=s,
                               window_s=window_s, curve=curve)  # fmt: skip


def _state_at(tmp_path: Any, at: float) -> Any:
    moment = datetime.fromtimestamp(at, UTC).isoformat()
    args = ["replay", "state", "--at", moment, "--data-dir", str(tmp_path), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["surge"]


def test_a_log_of_per_cell_changes_is_read_and_continued_by_recomputations(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("DISPATCH_SHARDS", "1")
    with monkeypatch.context() as old_code:
        old_code.setattr(Surge, "recompute", _one_event_a_cell)
        market = Market(tmp_path)
        market.advance(1)
        market.requests(5)
        market.advance(31)  # 2.10, recorded as a Surge.Changed
        old_at = market.now
        market.advance(1)
    market.restart()  # the new code, on the old log
    assert market.engine.workers[0].app.surge_levels() == {CELL: "2.10"}
    assert market.levels == {CELL: "2.10"}
    market.advance(1)  # the first tick after a start only starts the cadence's clock
    market.advance(30)
    (change,) = market.changes  # the next cadence: a Recomputed, from the old level
    assert (change.cell, change.previous, change.multiplier) == (CELL, "2.10", "2.65")

    events = list(SqliteLogSource(tmp_path).read(0))
    topics = [e.topic for e in events if e.topic.startswith("dispatch.Surge.")]
    assert topics == [Surge.Created.TOPIC, Surge.Changed.TOPIC, Surge.Recomputed.TOPIC]
    rows = [r for e in events for r in recorded_changes(e.topic, e.data)]
    assert [(r.previous, r.multiplier) for r in rows] == [("1.00", "2.10"), ("2.10", "2.65")]
    for r in rows:  # each explained by its own inputs, whichever event holds it
        assert r.curve is not None
        assert rederive(r.previous, r.demand, r.supply, r.curve) == (r.multiplier, r.target)
    checker = InvariantChecker()
    for e in events:
        checker.check(e)
    assert checker.finish() == []
    bent = InvariantChecker()  # an old change altered is still caught
    for e in events:
        if e.topic == Surge.Changed.TOPIC:
            e = replace(e, data={**e.data, "multiplier": "2.20"})
        bent.check(e)
    assert {v.kind for v in bent.finish()} == {"surge_not_rederived", "surge_not_from_last"}

    assert _state_at(tmp_path, old_at - 1) == {}
    assert _state_at(tmp_path, old_at) == {CELL: "2.10"}
    assert _state_at(tmp_path, market.now) == {CELL: "2.65"}
    projection = SurgeProjection()  # GET /surge's and the heatmap layer's fold
    view = projection.initial()
    for e in events:
        if e.topic in projection.topics:
            view = projection.apply(view, e)
    assert view.layer() == {CELL: "2.65"} and view.multiplier(*PICKUP) == "2.65"


def test_a_version_1_change_without_its_curve_loads_with_none(tmp_path, monkeypatch) -> None:
    with monkeypatch.context() as old_code:
        old_code.setattr(Surge, "recompute", _one_event_a_cell)
        market = Market(tmp_path)
        market.advance(1)
        market.requests(5)
        market.advance(31)
    shard = market.engine.workers[0].app
    stored = shard.repository.event_store.recorder.select_events(surge_id(0))
    (changed,) = [s for s in stored if s.topic == Surge.Changed.TOPIC]
    state = orjson.loads(shard.mapper.cipher.decrypt(changed.state) if shard.mapper.cipher
                         else changed.state)  # fmt: skip
    state.pop("curve")
    state["class_version"] = 1
    old = replace(changed, state=orjson.dumps(state))
    event = shard.mapper.to_domain_event(old)
    assert isinstance(event, Surge.Changed)
    assert (event.cell, event.multiplier, event.curve) == (CELL, "2.10", None)
    surge = shard.mapper.to_domain_event(stored[0]).mutate(None)
    event.mutate(surge)
    assert surge is not None and surge.cells == {CELL: "2.10"}


def _as_version_1(tmp_path: Any) -> int:
    """Rewrite the log's ``Changed`` events as version 1 wrote them (no curve, no class
    version): what a log from before the curve holds. The number rewritten."""
    import sqlite3

    con = sqlite3.connect(tmp_path / "shard-0000.sqlite")
    rows = con.execute(
        "SELECT originator_id, originator_version, state FROM stored_events WHERE topic = ?",
        (Surge.Changed.TOPIC,),
    ).fetchall()
    for originator, version, state in rows:
        data = orjson.loads(state)
        data.pop("curve")
        data.pop("class_version", None)
        con.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (orjson.dumps(data), originator, version),
        )
    con.commit()
    con.close()
    return len(rows)


def test_a_version_1_log_of_many_cells_is_verified_replayed_and_continued(
    tmp_path, monkeypatch
) -> None:
    """A log of version 1 ``Changed`` events (no curve) over 70 cells, then the new code:
    the restart folds them (past the tracker's first 64 rows), the next cadence records a
    ``Recomputed`` from each old level, ``replay verify`` passes the mixed log (the old
    changes checked for their chain, not re-derived), and ``replay state --at`` and the
    surge view read both kinds."""
    import h3

    monkeypatch.setenv("DISPATCH_SHARDS", "1")
    cells = sorted(h3.grid_disk(CELL, 5))[:70]
    with monkeypatch.context() as old_code:
        old_code.setattr(Surge, "recompute", _one_event_a_cell)
        market = Market(tmp_path)
        market.advance(1)
        for cell in cells:
            market.requests(3, h3.cell_to_latlng(cell))
        market.advance(31)  # 1.60 in each cell, a Surge.Changed each
        old_at = market.now
    assert _as_version_1(tmp_path) == 70
    market.restart()  # the new code, on the old log (no checkpoint: a full fold)
    assert market.engine.workers[0].restored_from is None
    old_levels = dict.fromkeys(cells, "1.60")
    assert market.engine.workers[0].app.surge_levels() == old_levels
    assert market.levels == old_levels
    market.advance(1)  # the first tick after a start only starts the cadence's clock
    market.advance(30)
    assert [(ch.previous, ch.multiplier) for ch in market.changes] == [("1.60", "1.90")] * 70
    assert market.changes[0].curve is not None
    new_levels = dict.fromkeys(cells, "1.90")
    assert market.levels == new_levels

    events = list(SqliteLogSource(tmp_path).read(0))
    old = [e for e in events if e.topic == Surge.Changed.TOPIC]
    assert len(old) == 70 and all("curve" not in e.data for e in old)
    assert [e.topic for e in events if e.topic == Surge.Recomputed.TOPIC] == [
        Surge.Recomputed.TOPIC
    ]
    result = CliRunner().invoke(app, ["replay", "verify", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    bent = InvariantChecker()  # an old change out of its chain is still caught
    for e in events:
        if e is old[3]:
            e = replace(e, data={**e.data, "previous": "1.20"})
        bent.check(e)
    assert [v.kind for v in bent.finish()] == ["surge_not_from_last"]
    assert _state_at(tmp_path, old_at - 1) == {}
    assert _state_at(tmp_path, old_at) == old_levels
    assert _state_at(tmp_path, market.now) == new_levels
    projection = SurgeProjection()
    view = projection.initial()
    for e in events:
        if e.topic in projection.topics:
            view = projection.apply(view, e)
    assert view.layer() == new_levels
