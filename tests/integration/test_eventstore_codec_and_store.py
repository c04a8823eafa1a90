"""The event store's wire format and local store, without a broker (no ``kafka`` marker)."""

from __future__ import annotations

import json
import threading
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from hypothesis import given
from hypothesis import strategies as st

from dispatch.eventstore.codec import decode_event, decode_tracking, encode_event, encode_tracking
from dispatch.eventstore.store import EventTable
from dispatch.eventstore.tracking import TrackingTable

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(
    originator=st.uuids() | st.text(min_size=1),
    version=st.integers(min_value=0, max_value=2**62),
    topic=st.text(min_size=1),
    state=st.binary() | json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
)
def test_every_stored_event_survives_the_wire_byte_for_byte_as_valid_json(
    originator: UUID | str, version: int, topic: str, state: bytes
) -> None:
    key, value = encode_event(StoredEvent(originator, version, topic, state))
    document = json.loads(value)  # any consumer can parse it
    decoded = decode_event(value)
    assert key == str(originator).encode() == document["originator_id"].encode()
    assert (decoded.originator_id(), decoded.originator_version) == (originator, version)
    assert (decoded.topic, decoded.state) == (topic, state)
    assert document["topic"] == topic


def test_json_states_are_nested_objects_and_other_bytes_are_base64() -> None:
    agg = uuid4()
    _, value = encode_event(StoredEvent(agg, 1, "t", b'{"name":"Zo\xc3\xa9"}'))
    assert json.loads(value)["state"] == {"name": "Zoé"}
    _, value = encode_event(StoredEvent(agg, 2, "t", b"\x00\xffencrypted"))
    assert json.loads(value)["state_encoding"] == "base64"


def test_tracking_records_round_trip() -> None:
    key, value = encode_tracking(Tracking("upstream", 42))
    assert key == b"upstream"
    assert decode_tracking(value) == Tracking("upstream", 42)


def stored(agg: UUID, version: int) -> StoredEvent:
    return StoredEvent(agg, version, f"topic{version}", f"state{version}".encode())


def test_a_rolled_back_transaction_leaves_the_store_exactly_as_it_was() -> None:
    table = EventTable(monotonic=True)
    old, new = uuid4(), uuid4()
    table.add_pending([stored(old, 1)], [1])
    table.commit()
    before = (
        table.select_notifications(None, 10),
        table.select_events(old),
        table.max_notification_id(),
    )

    table.check([stored(old, 2), stored(new, 1)])
    table.add_pending([stored(old, 2), stored(new, 1)], [3, 4])
    assert len(table.select_events(old)) == 2  # the owner thread sees its pending rows
    table.rollback()

    after = (
        table.select_notifications(None, 10),
        table.select_events(old),
        table.max_notification_id(),
    )
    assert after == before
    assert table.select_events(new) == []
    table.check([stored(old, 2), stored(new, 1)])  # the versions are free again


def test_pending_rows_are_invisible_to_other_threads_until_commit() -> None:
    table = EventTable(monotonic=True)
    agg = uuid4()
    table.add_pending([stored(agg, 1)], [1])
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(len(table.select_events(agg))))
    reader.start()
    reader.join(timeout=5)
    assert seen == [0]
    assert table.select_notifications(None, 10) == []  # notifications: committed only
    table.commit()
    assert [n.id for n in table.select_notifications(None, 10)] == [1]


@pytest.mark.parametrize(
    ("batch", "monotonic"),
    [
        ([1], True),  # already recorded
        ([0], True),  # lower than the last version (events must move forward)
        ([3, 3], True),  # twice in one batch
        ([2, 2], False),  # snapshots: twice in one batch
        ([1], False),  # snapshots: already recorded
    ],
)
def test_conflicting_versions_are_refused(batch: list[int], monotonic: bool) -> None:
    table = EventTable(monotonic=monotonic)
    agg = uuid4()
    table.add_pending([stored(agg, 1)], [1])
    table.commit()
    with pytest.raises(IntegrityError):
        table.check([stored(agg, v) for v in batch])


def test_tracking_only_moves_forward_and_pending_updates_roll_back() -> None:
    table = TrackingTable()
    table.load(Tracking("up", 5))
    table.load(Tracking("up", 3))  # an older record read later (compaction pending)
    assert table.max_tracking_id("up") == 5
    with pytest.raises(IntegrityError):
        table.check(Tracking("up", 5))
    table.add_pending(Tracking("up", 9))
    assert table.max_tracking_id("up") == 9
    table.rollback()
    assert table.max_tracking_id("up") == 5
