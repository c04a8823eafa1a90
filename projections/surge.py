"""Surge per H3 cell, as the shards recorded it: the multiplier of each cell now.

Folded from ``dispatch.Surge.Recomputed`` (each of its rows a cell's change) and, in logs
written before it, ``dispatch.Surge.Changed`` (docs/MARKETPLACE.md, "Surge"). A cell with no
event is at 1.00 (a log from before surge is 1.00 everywhere). Serves ``GET /surge``, the
quotes of ``POST /fares/estimate`` (the pickup's cell) and the heatmap's surge layer.

Each surge cell is recorded by one shard only (the owner of its region-resolution parent:
``dispatch.pricing.tracker``), so a cell's changes come in its shard's order. The view does
not rely on it: it keeps each cell's latest change, a change back to 1.00 included (kept
as a tombstone, not dropped), and the later ``(time, multiplier)`` wins, so folding the
shards in any order gives the same view.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import h3

from dispatch.domain.surge import CHANGED_TOPIC, NO_SURGE_TEXT, RECOMPUTED_TOPIC, SURGE_RESOLUTION
from dispatch.log import LogEvent


@dataclass
class SurgeView:
    cells: dict[str, tuple[str, float]] = field(default_factory=dict)  # cell -> (text, at)

    def cell_of(self, lat: float, lng: float) -> str:
        return str(h3.latlng_to_cell(lat, lng, SURGE_RESOLUTION))

    def multiplier(self, lat: float, lng: float) -> str:
        """The multiplier of the surge cell holding ``(lat, lng)`` (``"1.00"`` if none)."""
        found = self.cells.get(self.cell_of(lat, lng))
        return found[0] if found is not None else NO_SURGE_TEXT

    def layer(self) -> dict[str, str]:
        """Every cell above 1.00, with its multiplier."""
        return {cell: text for cell, (text, _) in self.cells.items() if text != NO_SURGE_TEXT}


class SurgeProjection:
    name = "surge"
    topics = frozenset({CHANGED_TOPIC, RECOMPUTED_TOPIC})
    params = f"resolution={SURGE_RESOLUTION};tombstones"

    def initial(self) -> SurgeView:
        return SurgeView()

    def apply(self, view: SurgeView, e: LogEvent) -> SurgeView:
        cells, at, d = view.cells, e.at, e.data
        changed: Iterator[tuple[str, str]]
        if e.topic == RECOMPUTED_TOPIC:  # a cadence's changes, a row a cell
            changed = zip(d["cells"], d["multipliers"], strict=True)
        else:  # one cell's (logs written before)
            changed = iter([(d["cell"], d["multiplier"])])
        for cell, text in changed:
            known = cells.get(cell)
            if known is not None and (known[1], known[0]) > (at, text):
                continue  # a later change stands (order-free: ties go to the higher text)
            cells[cell] = (text, at)  # 1.00 included: a tombstone with its time
        return view
