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
