"""Which shard speaks for a driver now, for the views that fold drivers' availability.

A driver handed off between shards (docs/ARCHITECTURE.md, "Driver hand-off") has a stream
of events in each shard that served it, each whole, and a view reads the shards' logs in
any order between them: the shard it left may still be read after the one it went to. A
shard's stream is in the tenure it last began (registration: 0 at the driver's home;
``Driver.Arrived`` and ``Driver.Returned`` carry theirs) until it hands the driver off. The
driver's current tenure is the latest begun; only its shard's events change what a view
shows of the driver's availability. Only drivers that ever moved are kept here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from dispatch.domain.driver import Driver
from dispatch.domain.ids import shard_of
from dispatch.log import LogEvent

_BEGINS = frozenset({Driver.Arrived.TOPIC, Driver.Returned.TOPIC})
_ENDS = Driver.HandedOff.TOPIC
_ENDED = -1


@dataclass(slots=True)
class Tenures:
    current: dict[str, tuple[int, int]] = field(default_factory=dict)  # driver -> shard, epoch
    streams: dict[tuple[str, int], int] = field(default_factory=dict)  # (driver, shard) -> epoch

    def admits(self, e: LogEvent) -> bool:
        """Whether a driver event speaks for the driver's availability now (and note the
        tenures it begins or ends)."""
        driver, shard, topic = e.aggregate_id, e.shard, e.topic
        now = self.current.get(driver)
        if topic in _BEGINS:
            epoch = int(e.data["epoch"])
            self.streams[driver, shard] = epoch
            if now is None or epoch > now[1]:
                self.current[driver] = (shard, epoch)
                return True
            return False
        if now is None:
            if topic == _ENDS:
                self.current[driver] = (shard, 0)
                self.streams[driver, shard] = _ENDED
            return True  # a driver that never moved (or the first hand-off from its home)
        admitted = now[0] == shard and self.streams.get((driver, shard), 0) == now[1]
        if topic == _ENDS:
            self.streams[driver, shard] = _ENDED
        return admitted

    def serving(self, driver_id: str) -> int | None:
        """The shard serving a driver that moved (its latest tenure's), or None: its home."""
        now = self.current.get(driver_id)
        if now is None or now[0] == shard_of(UUID(driver_id)):
            return None
        return now[0]
