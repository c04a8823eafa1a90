"""A cadence's changes are one ``Surge.Recomputed``: each row from the cell's level before,
cells already at their level left out, and nothing recorded when none moves."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatch.domain.surge import Surge, recorded_changes

AT = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CURVE: dict[str, str | float] = {"cap": "3.00", "gain": 0.5, "smoothing": 0.5, "band": "0.10",
                                 "noise": 0.0}  # fmt: skip


def _recomputed(surge: Surge) -> list[Surge.Recomputed]:
    return [e for e in surge.collect_events() if isinstance(e, Surge.Recomputed)]


def test_a_cadence_is_one_event_whose_rows_start_from_each_cells_level() -> None:
    surge = Surge.start(0, 8, AT)
    surge.recompute(["a", "b"], ["2.10", "1.50"], ["3.00", "2.00"], [5, 3], [0, 1], 300.0, AT,
                    CURVE)  # fmt: skip
    surge.recompute(["a", "b"], ["2.65", "1.00"], ["3.00", "1.00"], [5, 0], [0, 1], 300.0, AT,
                    CURVE)  # fmt: skip
    first, second = _recomputed(surge)
    assert [(c.cell, c.previous, c.multiplier) for c in second.changes()] == [
        ("a", "2.10", "2.65"), ("b", "1.50", "1.00"),
    ]  # fmt: skip
    assert surge.cells == {"a": "2.65"}  # 1.00 is not kept
    assert first.changes()[0].curve == CURVE and first.changes()[0].window_s == 300.0


def test_a_cell_already_at_its_level_is_left_out_and_no_move_records_nothing() -> None:
    surge = Surge.start(0, 8, AT)
    surge.recompute(["a"], ["2.10"], ["3.00"], [5], [0], 300.0, AT, CURVE)
    surge.recompute(["a", "b"], ["2.10", "1.20"], ["3.00", "1.50"], [5, 2], [0, 0], 300.0, AT,
                    CURVE)  # fmt: skip
    surge.recompute(["a", "b"], ["2.10", "1.20"], ["3.00", "1.50"], [5, 2], [0, 0], 300.0, AT,
                    CURVE)  # fmt: skip
    events = _recomputed(surge)
    assert len(events) == 2
    assert events[1].cells == ["b"] and events[1].demand == [2] and events[1].previous == ["1.00"]


def test_a_log_reader_gets_the_same_rows_from_the_events_data() -> None:
    surge = Surge.start(0, 8, AT)
    surge.recompute(["a", "b"], ["2.10", "1.50"], ["3.00", "2.00"], [5, 3], [0, 1], 300.0, AT,
                    CURVE)  # fmt: skip
    (event,) = _recomputed(surge)
    data = {k: getattr(event, k) for k in ("cells", "multipliers", "previous", "targets",
                                           "demand", "supply", "window_s", "curve")}  # fmt: skip
    assert list(recorded_changes(Surge.Recomputed.TOPIC, data)) == event.changes()
    assert list(recorded_changes("dispatch.Ride.Requested", data)) == []


def test_a_cadence_of_more_rows_than_the_bound_is_several_events_in_order(monkeypatch) -> None:
    import dispatch.domain.surge as surge_module

    monkeypatch.setattr(surge_module, "MAX_RECOMPUTED_ROWS", 3)
    surge = Surge.start(0, 8, AT)
    cells = [f"c{i}" for i in range(8)]
    surge.recompute(cells, ["2.10"] * 8, ["3.00"] * 8, list(range(8)), [0] * 8, 300.0, AT, CURVE)
    events = _recomputed(surge)
    assert [e.cells for e in events] == [cells[:3], cells[3:6], cells[6:]]
    assert [e.demand for e in events] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert all(e.timestamp == AT and e.curve == CURVE for e in events)
    assert [e.originator_version for e in events] == [2, 3, 4]
    assert surge.cells == dict.fromkeys(cells, "2.10")


def test_columns_of_unequal_length_are_refused() -> None:
    import pytest

    surge = Surge.start(0, 8, AT)
    with pytest.raises(ValueError, match="one entry a cell"):
        surge.recompute(["a", "b"], ["2.10", "1.50"], ["3.00", "2.00"], [5, 3], [0], 300.0, AT,
                        CURVE)  # fmt: skip
    assert _recomputed(surge) == []
