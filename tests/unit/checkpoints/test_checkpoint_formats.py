"""Checkpoint format 6 ("sharing" and "plans" parts: shared rides' terms and drivers'
shared plans) is written; a format-5 checkpoint (no shared rides), a format-4 one (no
scheduled rides), a format-3 one (no places) and a format-2 one (no vehicles, 6-field ride
rows) of the versions before still read; a format this code does not know is skipped as
unusable: the shard replays instead."""

from __future__ import annotations

import uuid
import zlib
from typing import Any

import orjson
import pytest

from dispatch.checkpoints import (
    FORMAT,
    CheckpointError,
    Chunk,
    assemble,
    encode_chunks,
    load_into,
    restore_matcher,
)
from dispatch.domain.products import Vehicle
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.index import DriverIndex
from dispatch.matching.matcher import Matcher, MatcherConfig
from dispatch.matching.state import Captured
from dispatch.matching.strategies import PendingRide, make_strategy

XL = Vehicle("xl", 6, False)


def matcher() -> Matcher:
    return Matcher(
        DriverIndex[uuid.UUID](9, ttl_s=60),
        StraightLineEta(),
        make_strategy("greedy", 1.0),
        MatcherConfig(),
    )


BOOKED, DISPATCHED = uuid.uuid4(), uuid.uuid4()
SHARED, POOLED = uuid.uuid4(), uuid.uuid4()
SHARING = {"seats": 2, "max_wait_s": 300.0, "detour_factor": 1.5, "direct_s": 600.0}


def written(position: int) -> tuple[list[Chunk], uuid.UUID, uuid.UUID]:
    ride, driver = uuid.uuid4(), uuid.uuid4()
    state = Captured(
        pending=[PendingRide(ride, 37.77, -122.42, 1.7e9, 1.7e9 + 300, product="xl"),
                 PendingRide(DISPATCHED, 37.77, -122.42, 1.7e9, 1.7e9 + 900,
                             scheduled_for=1.7e9 + 60, overdue=True)],
        offers=[], assigned=[], drivers={}, vehicles={driver: XL},
        places=[("sfo", str(driver), 1.7e9, 1.7e9 + 5)],
        scheduled=[(PendingRide(BOOKED, 37.7, -122.4, 1.7e9, 1.7e9 + 7_200,
                                scheduled_for=1.7e9 + 6_300), True)],
        sharing=[(str(SHARED), 37.79, -122.4, SHARING, 1.7e9 + 30)],
        plans=[(str(POOLED), True, [[str(SHARED), "D"]], [str(SHARED)], None)],
    )  # fmt: skip
    return list(encode_chunks(state, position, 1.7e9, 1.7e9, rows=100)), ride, driver


def rewritten(chunks: list[Chunk], change: Any) -> list[Chunk]:
    out = []
    for c in chunks:
        body = orjson.loads(c.data)
        change(body)
        data = orjson.dumps(body)
        out.append(Chunk(c.position, c.seq, c.last, data, zlib.crc32(data)))
    return out


def as_format_5(body: dict[str, Any]) -> None:
    """As the version before shared rides wrote it: format 5, no sharing nor plans."""
    if "header" in body:
        body["header"]["format"] = 5
    body["parts"].pop("sharing", None)
    body["parts"].pop("plans", None)


def as_format_4(body: dict[str, Any]) -> None:
    """As the version before scheduled rides wrote it: format 4, no scheduled rides."""
    as_format_5(body)
    if "header" in body:
        body["header"]["format"] = 4
    body["parts"].pop("scheduled", None)
    body["parts"]["pending"] = [row[:7] for row in body["parts"].get("pending", [])]


def as_format_3(body: dict[str, Any]) -> None:
    """As the version before places wrote it: format 3, no places."""
    as_format_4(body)
    if "header" in body:
        body["header"]["format"] = 3
    body["parts"].pop("places", None)


def as_format_2(body: dict[str, Any]) -> None:
    """As the version before products wrote it: format 2, no vehicles, rides of 6 fields."""
    as_format_3(body)
    if "header" in body:
        body["header"]["format"] = 2
    body["parts"].pop("vehicles", None)
    body["parts"]["pending"] = [row[:6] for row in body["parts"].get("pending", [])]


def test_a_checkpoint_is_written_in_format_6_with_places_scheduled_and_shared_rides() -> None:
    chunks, ride, driver = written(9)
    assert FORMAT == 6
    assert orjson.loads(chunks[0].data)["header"]["format"] == 6
    m = matcher()
    load_into(m, assemble(9, chunks))
    assert m.pending[ride].product == "xl"
    assert m.vehicles[driver] == XL
    assert m.place_queues.queue("sfo") == [(driver, 1.7e9 + 5)]
    booked = m.scheduled.booked[BOOKED]
    assert (booked.scheduled_for, booked.expires_at) == (1.7e9 + 6_300, 1.7e9 + 7_200)
    assert BOOKED in m.scheduled.activating  # asking for its rider's lock when taken
    dispatched = m.pending[DISPATCHED]
    assert (dispatched.scheduled_for, dispatched.overdue) == (1.7e9 + 60, True)
    sharing, dropoff = m.pool.terms[SHARED]
    assert (sharing.seats, sharing.direct_s, dropoff) == (2, 600.0, (37.79, -122.4))
    assert m.pool.picked_up[SHARED] == 1.7e9 + 30
    plan = m.pool.plans[POOLED]
    assert (plan.pooled, plan.plan, plan.aboard) == (True, [[str(SHARED), "D"]], [str(SHARED)])


def test_a_format_5_checkpoint_of_the_version_before_shared_rides_still_reads() -> None:
    chunks, ride, _ = written(9)
    m = matcher()
    load_into(m, assemble(9, rewritten(chunks, as_format_5)))
    assert m.pending[ride].product == "xl" and BOOKED in m.scheduled.booked
    assert not m.pool.terms and not m.pool.plans  # there were no shared rides


def test_a_format_4_checkpoint_of_the_version_before_scheduled_rides_still_reads() -> None:
    chunks, ride, driver = written(9)
    m = matcher()
    load_into(m, assemble(9, rewritten(chunks, as_format_4)))
    assert m.pending[ride].product == "xl" and m.vehicles[driver] == XL
    assert not m.scheduled.booked  # there were no scheduled rides
    assert m.pending[DISPATCHED].scheduled_for is None


def test_a_format_3_checkpoint_of_the_version_before_places_still_reads() -> None:
    chunks, ride, driver = written(9)
    m = matcher()
    load_into(m, assemble(9, rewritten(chunks, as_format_3)))
    assert m.vehicles[driver] == XL and m.pending[ride].product == "xl"
    assert not m.place_queues.inside  # nobody was inside a place: there were none


def test_a_format_2_checkpoint_of_the_previous_version_still_reads() -> None:
    chunks, ride, driver = written(9)
    m = matcher()
    load_into(m, assemble(9, rewritten(chunks, as_format_2)))
    assert m.pending[ride].product == "standard"  # as every ride was matched then
    assert driver not in m.vehicles  # every driver then drove the default vehicle


def test_a_format_it_does_not_know_is_unusable_and_the_shard_replays() -> None:
    chunks, _, _ = written(9)

    def as_format_7(body: dict[str, Any]) -> None:
        if "header" in body:
            body["header"]["format"] = 7
        body["parts"]["something_new"] = [1]

    newer = rewritten(chunks, as_format_7)
    with pytest.raises(CheckpointError, match="unknown format"):
        assemble(9, newer)

    class Store:
        def checkpoint_positions(self) -> list[int]:
            return [9]

        def checkpoint_chunks(self, position: int) -> list[Chunk]:
            return newer

    m, restored = restore_matcher(Store(), matcher, log_end=20, shard=0)
    assert restored is None and not m.pending  # the whole log is replayed instead
    with pytest.raises(CheckpointError, match="no usable checkpoint at or after 9"):
        restore_matcher(Store(), matcher, log_end=20, shard=0, floor=9)
