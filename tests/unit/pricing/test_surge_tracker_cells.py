"""The surge tracker's surge cell of an index cell, computed on the H3 index's bits for a
whole batch at once, is ``h3.cell_to_parent``'s (the index's own resolution or finer)."""

from __future__ import annotations

from h3.api import basic_int as h3i
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.domain.surge import SURGE_RESOLUTION
from dispatch.pricing.surge import SurgeCurve
from dispatch.pricing.tracker import SurgeConfig, SurgeTracker

PLACES = st.lists(st.tuples(st.floats(-90, 90), st.floats(-180, 180)), min_size=1, max_size=50)


@settings(deadline=None)  # (no test fails on timing: a loaded machine)
@given(PLACES, st.integers(SURGE_RESOLUTION, 15))
def test_an_index_cells_surge_cell_is_its_h3_parent(
    places: list[tuple[float, float]], resolution: int
) -> None:
    tracker = SurgeTracker(SurgeConfig(SurgeCurve()))
    cells = [h3i.latlng_to_cell(lat, lng, resolution) for lat, lng in places]
    expected = [h3i.cell_to_parent(c, SURGE_RESOLUTION) for c in cells]
    assert tracker._parents(cells, resolution).tolist() == expected


def test_a_coarser_index_cell_gives_its_centre_child() -> None:
    tracker = SurgeTracker(SurgeConfig(SurgeCurve()))
    cell = h3i.latlng_to_cell(37.77, -122.42, 7)
    assert tracker._parents([cell], 7).tolist() == [h3i.cell_to_center_child(cell, 8)]


def test_a_full_fold_keeps_only_the_requests_a_window_may_still_hold() -> None:
    """Folding an old log: requests a window or more before the latest are not kept (the
    review's Low 14), and the next cadence counts exactly the window's."""
    from decimal import Decimal

    import numpy as np

    from dispatch.pricing.surge import SurgeCurve
    from dispatch.pricing.tracker import SurgeConfig, SurgeTracker

    tracker = SurgeTracker(SurgeConfig(SurgeCurve(Decimal("3.00")), 30.0, 300.0))
    n = 200_000  # one request every second, about 2.3 days of them
    for i in range(n):
        tracker.requested(37.77, -122.42, float(i))
    assert len(tracker.window()) <= 65_536 + 300
    tracker.requested(37.77, -122.42, 10.0)  # out of order, long out of the window: dropped
    last = n - 1.0
    tracker.due(last)
    change = tracker.tick(last + 30, [], np.zeros(0, dtype=np.int64), 9)
    assert change is not None and change.demand == [270]  # (last + 30 - 300, last]


def test_supply_met_before_its_cell_has_demand_is_counted_once_a_request_comes() -> None:
    """An index cell whose surge cell has no row yet (drivers, no request) is left unmapped
    by ``meet``; when a request opens the row, the next cadence counts its drivers."""
    from decimal import Decimal

    import numpy as np

    tracker = SurgeTracker(SurgeConfig(SurgeCurve(Decimal("3.00")), 30.0, 300.0))
    here, there = (37.77, -122.42), (37.80, -122.27)
    beside = next(c for c in h3i.cell_to_children(h3i.latlng_to_cell(*there, 8), 9)
                  if c != h3i.latlng_to_cell(*there, 9))  # fmt: skip
    index_cells = [h3i.latlng_to_cell(*here, 9), h3i.latlng_to_cell(*there, 9), beside]
    counts = np.array([2, 4, 1], dtype=np.int64)  # drivers: 2 here, 4 + 1 there
    tracker.due(0.0)
    tracker.meet(index_cells[:2], 9)  # no row for either surge cell yet
    tracker.meet(index_cells, 9)
    for _ in range(12):
        tracker.requested(*there, 1.0)
    change = tracker.tick(30.0, index_cells, counts, 9)
    assert change is not None
    assert change.cells == [h3i.int_to_str(h3i.latlng_to_cell(*there, SURGE_RESOLUTION))]
    assert change.supply == [5] and change.demand == [12]


def test_meeting_index_cells_in_steps_maps_them_as_all_at_once() -> None:
    """Cells met a few at a time between cadences sum into the same surge cells' supply as
    cells met by the cadence itself."""
    from decimal import Decimal

    import numpy as np

    cells = [h3i.latlng_to_cell(37.77 + i * 0.004, -122.42, 9) for i in range(40)]
    counts = np.arange(40, dtype=np.int64) % 3  # 0 to 2 drivers a cell
    stepped, whole = (SurgeTracker(SurgeConfig(SurgeCurve(Decimal("3.00")))) for _ in "ab")
    for tracker in (stepped, whole):
        for cell in cells:
            for _ in range(20):  # pressure in every surge cell: each one moves
                tracker.requested(*h3i.cell_to_latlng(cell), 1.0)
        tracker.due(0.0)
    for upto in (5, 5, 17, 40):
        stepped.meet(cells[:upto], 9)
    a = stepped.tick(30.0, cells, counts, 9)
    b = whole.tick(30.0, cells, counts, 9)
    assert a is not None and b is not None
    assert sorted(zip(a.cells, a.supply, strict=True)) == sorted(
        zip(b.cells, b.supply, strict=True)
    )
    assert sum(a.supply) == int(counts.sum())


@settings(deadline=None)  # (no test fails on timing: a loaded machine)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 41)), min_size=1, max_size=80))
def test_supply_is_every_index_cells_drivers_summed_into_its_surge_cells_row(
    steps: list[tuple[bool, int]],
) -> None:
    """Index cells met and requests opening rows, in any order: each row's supply is the
    drivers of exactly the index cells inside its surge cell."""
    import numpy as np

    centre = h3i.latlng_to_cell(37.77, -122.42, SURGE_RESOLUTION)
    parents = sorted(h3i.grid_disk(centre, 2))[:6]
    pool = [child for parent in parents for child in sorted(h3i.cell_to_children(parent, 9))]
    tracker = SurgeTracker(SurgeConfig(SurgeCurve()))
    index: list[int] = []
    for is_request, k in steps:
        cell = pool[k]
        if is_request:
            tracker.requested(*h3i.cell_to_latlng(cell), 1.0)
        elif cell not in index:
            index.append(cell)
        tracker.meet(index, 9)
    counts = np.arange(1, len(index) + 1, dtype=np.int64)
    supply = tracker._supply(index, counts, 9)
    expected = [
        sum(int(n) for c, n in zip(index, counts, strict=True)
            if h3i.cell_to_parent(c, SURGE_RESOLUTION) == row_cell)
        for row_cell in tracker._cells
    ]  # fmt: skip
    assert supply.tolist() == expected


def test_a_recorded_cadence_of_cells_new_to_the_tracker_sets_every_level() -> None:
    """Folding a ``Surge.Recomputed`` whose cells the tracker has never seen (a full fold
    whose requests were already out of the window): each gets its row and its level, even
    when the rows outgrow the tracker's arrays on the way."""
    centre = h3i.latlng_to_cell(37.77, -122.42, SURGE_RESOLUTION)
    cells = [h3i.int_to_str(c) for c in sorted(h3i.grid_disk(centre, 6))]  # 127: past 64
    tracker = SurgeTracker(SurgeConfig(SurgeCurve()))
    tracker.levels_recorded(cells, ["1.50"] * len(cells))
    assert tracker.levels() == dict.fromkeys(cells, "1.50")
    tracker.levels_recorded(cells[:2], ["1.00", "2.35"])
    assert tracker.levels() == {**dict.fromkeys(cells[2:], "1.50"), cells[1]: "2.35"}


def test_loading_more_levels_than_the_arrays_hold_sets_every_level() -> None:
    """A restore's ``load`` of saved levels for cells the tracker has no row for (demand
    gone from the window, levels still decaying): rows 64, 128 and 256 grow the arrays on
    the way, and every level is set (each written after its row exists)."""
    centre = h3i.latlng_to_cell(37.77, -122.42, SURGE_RESOLUTION)
    cells = [h3i.int_to_str(c) for c in sorted(h3i.grid_disk(centre, 10))]  # 331: past 256
    tracker = SurgeTracker(SurgeConfig(SurgeCurve()))
    levels = {c: ["1.07", "2.00"][i % 2] for i, c in enumerate(cells)}
    tracker.load(levels)
    assert tracker.levels() == levels
    outer = h3i.int_to_str(sorted(h3i.grid_ring(centre, 11))[0])  # one more, by ``level``
    tracker.level(outer, "1.35")
    assert tracker.levels() == {**levels, outer: "1.35"}
