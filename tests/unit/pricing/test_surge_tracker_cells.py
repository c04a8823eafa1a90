"""The surge tracker's surge cell of an index cell, computed on the H3 index's bits for a
whole batch at once, is ``h3.cell_to_parent``'s (the index's own resolution or finer)."""

from __future__ import annotations

from h3.api import basic_int as h3i
from hypothesis import given
from hypothesis import strategies as st

from dispatch.domain.surge import SURGE_RESOLUTION
from dispatch.pricing.surge import SurgeCurve
from dispatch.pricing.tracker import SurgeConfig, SurgeTracker

PLACES = st.lists(st.tuples(st.floats(-90, 90), st.floats(-180, 180)), min_size=1, max_size=50)


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
