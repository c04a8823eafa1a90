"""How the shard's aggregates' own value types are stored in snapshots (a checkpoint's
aggregates, the periodic snapshots of drivers and riders).

Events carry plain values; aggregate state may hold ``Point``s (a ride's pickup and
drop-off), which the library's JSON transcoder needs told about. Statuses are ``StrEnum``
members and are stored as their text (JSON writes a ``str`` subclass as a string before
any transcoding is asked): a restored aggregate holds the text, which compares and hashes
equal to the member.
"""

from __future__ import annotations

from eventsourcing.persistence import Transcoding

from dispatch.domain.geo import Point


class PointAsList(Transcoding):
    type = Point
    name = "point"

    def encode(self, obj: Point) -> list[float]:
        return obj.as_list()

    def decode(self, data: list[float]) -> Point:
        return Point.from_list(data)
