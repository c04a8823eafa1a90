"""Surge per H3 cell, as the shards recorded it: the multiplier of each cell now.

Folded from ``dispatch.Surge.Changed`` (docs/MARKETPLACE.md, "Surge"). A cell with no
event is at 1.00 (a log from before surge is 1.00 everywhere). Serves ``GET /surge``, the
quotes of ``POST /fares/estimate`` (the pickup's cell) and the heatmap's surge layer.

Each surge cell is recorded by one shard only (the owner of its region-resolution parent:
``dispatch.pricing.tracker``), so a cell's changes come in its shard's order. The view does
not rely on it: it keeps each cell's latest change, a change back to 1.00 included (kept
as a tombstone, not dropped), and the later ``(time, multiplier)`` wins, so folding the
shards in any order gives the same view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h3

from dispatch.domain.surge import NO_SURGE_TEXT, SURGE_RESOLUTION, Surge
from dispatch.log import LogEvent

_CHANGED = Surge.Changed.TOPIC


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
    topics = frozenset({_CHANGED})
    params = f"resolution={SURGE_RESOLUTION};tombstones"

    def initial(self) -> SurgeView:
        return SurgeView()

    def apply(self, view: SurgeView, e: LogEvent) -> SurgeView:
        cell, text = e.data["cell"], e.data["multiplier"]
        known = view.cells.get(cell)
        if known is not None and (known[1], known[0]) > (e.at, text):
            return view  # a later change stands (order-free: ties go to the higher text)
        view.cells[cell] = (text, e.at)  # 1.00 included: a tombstone with its time
        return view
