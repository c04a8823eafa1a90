"""`replay audit`'s reading of the log: the operator a `--operator` value stands for, and
the order of the trail."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

from dispatch.domain.operators import operator_id
from dispatch.log import LogEvent, LogSource, StoredEvent
from dispatch.replay.audit import audit_trail, operator_filter

HEX_NAME = "deadbeef" * 4  # a valid operator name that UUID() also takes


def test_an_operator_name_of_32_hex_digits_is_taken_as_a_name_not_an_id() -> None:
    assert operator_filter(HEX_NAME) == str(operator_id(HEX_NAME))


def test_only_a_canonical_operator_id_is_taken_as_an_id() -> None:
    dana = str(operator_id("dana"))
    assert operator_filter(dana) == dana
    for other in (dana.upper(), "{" + dana + "}", "urn:uuid:" + dana):
        try:
            operator_filter(other)
        except ValueError as error:
            assert "nor an operator id" in str(error)
        else:
            raise AssertionError(f"{other!r} was taken")


class _Log(LogSource):
    def __init__(self, events: dict[int, list[LogEvent]]) -> None:
        self.events = events

    def shards(self) -> list[int]:
        return sorted(self.events)

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        return iter([e for e in self.events[shard] if e.position > after])

    def head(self, shard: int) -> int | None:
        return max((e.position for e in self.events[shard]), default=0)

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        return []

    def close(self) -> None:
        pass


def _cancel(shard: int, position: int, at: float) -> LogEvent:
    data = {
        "operator_id": str(operator_id("dana")),
        "operator_name": "dana",
        "operator_role": "dispatcher",
        "reason": "dup",
    }
    aggregate = f"00000000-0000-4000-8000-{position:012d}"
    return LogEvent(shard, position, aggregate, 3, "dispatch.Ride.CancelledByOperator", at, data)


def test_the_trail_orders_actions_of_one_instant_by_shard_then_position_as_numbers() -> None:
    log = _Log(
        {
            2: [_cancel(2, 5, 100.0)],
            10: [_cancel(10, 1, 100.0)],
            0: [_cancel(0, 9, 100.0), _cancel(0, 10, 100.0), _cancel(0, 3, 99.0)],
        }
    )
    assert [r.where for r in audit_trail(log)] == ["0:3", "0:9", "0:10", "2:5", "10:1"]


def test_erasures_of_the_first_version_do_not_break_the_trail() -> None:
    """Review finding 3: a version-1 erasure carried ``operator_id`` alone ("" for the
    subject themself); the trail skips a self-erasure and shows an admin's with the name
    and role it lacks empty."""
    admin = str(operator_id("root"))
    mine = {"by": "self", "operator_id": ""}
    theirs = {"by": "operator", "operator_id": admin}
    log = _Log(
        {
            0: [
                LogEvent(0, 1, admin, 2, "dispatch.Rider.Erased", 1.0, mine),
                LogEvent(0, 2, admin, 2, "dispatch.Driver.Erased", 2.0, theirs),
                _cancel(0, 3, 3.0),
            ]
        }
    )
    trail = list(audit_trail(log))
    assert [(r.kind, r.operator_id, r.operator_name) for r in trail] == [
        ("Driver.Erased", admin, ""),
        ("Ride.CancelledByOperator", str(operator_id("dana")), "dana"),
    ]
