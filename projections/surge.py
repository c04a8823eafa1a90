"""Surge per H3 cell, as the shards recorded it: the multiplier of each cell now.

Folded from ``dispatch.Surge.Recomputed`` (each of its rows a cell's change) and, in logs
written before it, ``dispatch.Surge.Changed`` (docs/MARKETPLACE.md, "Surge"). A cell with no
event is at 1.00 (a log from before surge is 1.00 everywhere). Serves ``GET /surge``, the
quotes of ``POST /fares/estimate`` (the pickup's cell) and the heatmap's surge layer.

Each surge cell is recorded by one shard only (the owner of its region-resolution parent:
``dispatch.pricing.tracker``), so a cell's changes come in its shard's order. The view does
not rely on it: it keeps each cell's latest change, a change back to 1.00 included (kept
as a tombstone, not dropped), and the later ``(time, multiplier)`` wins, so folding the
shards in any order gives the same view. With each cell's multiplier it keeps where the
change is in the log (shard and position): a fare priced from the view names it
(``dispatch.domain.ride_fare.SurgeSource``), so ``replay fare`` can point to it and
``replay verify`` can check it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import h3

from dispatch.domain.ride_fare import SurgeSource
from dispatch.domain.surge import CHANGED_TOPIC, NO_SURGE_TEXT, RECOMPUTED_TOPIC, SURGE_RESOLUTION
from dispatch.log import LogEvent

# A cell's latest change: its multiplier, time, and the change's shard and log position.
Change = tuple[str, float, int, int]


@dataclass
class SurgeView:
    cells: dict[str, Change] = field(default_factory=dict)

    def cell_of(self, lat: float, lng: float) -> str:
        return str(h3.latlng_to_cell(lat, lng, SURGE_RESOLUTION))

    def multiplier(self, lat: float, lng: float) -> str:
        """The multiplier of the surge cell holding ``(lat, lng)`` (``"1.00"`` if none)."""
        return self.reading(lat, lng)[0]

    def reading(self, lat: float, lng: float) -> tuple[str, SurgeSource]:
        """The multiplier of the surge cell holding ``(lat, lng)`` and where it came from:
        the event that set it above 1.00; none at 1.00, also for a cell that cooled back
        down (the few cells one event set to 1.00 would say where the rider was)."""
        found = self.cells.get(self.cell_of(lat, lng))
        if found is None or found[0] == NO_SURGE_TEXT:
            return NO_SURGE_TEXT, SurgeSource()
        text, at, shard, position = found
        return text, SurgeSource(shard, position, at)

    def layer(self) -> dict[str, str]:
        """Every cell above 1.00, with its multiplier."""
        return {cell: c[0] for cell, c in self.cells.items() if c[0] != NO_SURGE_TEXT}


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
            cells[cell] = (text, at, e.shard, e.position)  # 1.00 included: a tombstone
        return view
