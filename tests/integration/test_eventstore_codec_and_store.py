"""The event store's wire format and local store, without a broker (no ``kafka`` marker)."""

from __future__ import annotations

import json
import threading
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import DataError, IntegrityError, StoredEvent
from hypothesis import given
from hypothesis import strategies as st

from dispatch.adapters.kafka.eventstore.codec import (
    ENDS_HEADER,
    EVENTS_PER_RECORD,
    MAX_RECORD_BYTES,
    decode_event,
    decode_events,
    encode_event,
    encode_events,
    event_documents,
    notification_id,
    record_position,
)
from dispatch.adapters.kafka.eventstore.store import EventTable
from dispatch.adapters.kafka.logsource import decode_records

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


# -- many events per record ------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**50), st.integers(0, EVENTS_PER_RECORD - 1))
def test_notification_ids_map_to_record_offsets_and_indexes_and_back(
    offset: int, index: int
) -> None:
    nid = notification_id(offset, index)
    assert record_position(nid) == (offset, index)
    assert notification_id(offset, index + 1) == nid + 1 or index == EVENTS_PER_RECORD - 1
    assert notification_id(offset + 1, 0) > nid  # ids rise with log order
    assert notification_id(0, 0) == 1


@given(
    st.lists(
        st.tuples(
            st.uuids() | st.text(min_size=1),
            st.integers(min_value=0, max_value=2**62),
            st.text(min_size=1),
            st.binary() | json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_a_batch_is_one_readable_record_that_decodes_to_its_events_byte_for_byte(
    fields: list[tuple[UUID | str, int, str, bytes]],
) -> None:
    events = [StoredEvent(*f) for f in fields]
    (record,) = encode_events(events)
    assert record.event_count == len(events)
    assert record.key == str(events[0].originator_id).encode()
    document = json.loads(record.value)  # any consumer (kcat) can parse it
    assert list(document) == ["events"]
    assert document["events"] == [json.loads(encode_event(e)[1]) for e in events]
    for decoded in (
        decode_events(record.value, record.headers),
        decode_events(record.value),  # a copy that lost its headers: found by scanning
    ):
        assert [(d.originator_id(), d.originator_version, d.topic, d.state) for d in decoded] == [
            (e.originator_id, e.originator_version, e.topic, e.state) for e in events
        ]
    assert len(event_documents(record.value)) == len(events)


def test_records_written_one_event_each_before_batching_still_decode() -> None:
    agg = uuid4()
    _, old = encode_event(StoredEvent(agg, 7, "t", b'{"a":1}'))
    (decoded,) = decode_events(old, [])
    assert (decoded.originator_id(), decoded.originator_version, decoded.state) == (
        agg,
        7,
        b'{"a":1}',
    )
    assert event_documents(old) == [json.loads(old)]


def test_large_batches_are_split_into_records_of_bounded_size_and_count() -> None:
    agg = uuid4()
    small = [StoredEvent("a", v, "t", b'{"n":1}') for v in range(1, 5_001)]
    records = encode_events(small)
    assert [r.event_count for r in records] == [EVENTS_PER_RECORD, 5_000 - EVENTS_PER_RECORD]
    big_state = json.dumps({"blob": "x" * 100_000}).encode()
    big = [StoredEvent(agg, v, "t", big_state) for v in range(1, 13)]
    records = encode_events(big)
    assert len(records) > 1
    assert all(len(r.value) <= MAX_RECORD_BYTES for r in records)
    assert sum(r.event_count for r in records) == 12
    huge = [StoredEvent(agg, 1, "t", json.dumps({"blob": "y" * MAX_RECORD_BYTES}).encode())]
    assert [r.event_count for r in encode_events(huge)] == [1]  # alone, however large
    decoded = [d for r in encode_events(big + huge) for d in decode_events(r.value, r.headers)]
    assert [d.state for d in decoded] == [e.state for e in big + huge]


def test_a_corrupt_ends_header_is_a_data_error() -> None:
    (record,) = encode_events([stored(uuid4(), 1), stored(uuid4(), 1)])
    with pytest.raises(DataError):
        decode_events(record.value, [(ENDS_HEADER, b"[5,9]")])


def test_a_restored_record_gets_contiguous_ids_and_selects_work_inside_and_between_records() -> (
    None
):
    table = EventTable(monotonic=True)
    a, b = uuid4(), uuid4()
    first = [stored(a, 1), stored(a, 2), stored(b, 1)]
    second = [stored(b, 2), stored(a, 3)]
    for offset, batch in ((0, first), (2, second)):  # offset 1: a transaction marker
        (record,) = encode_events(batch)
        table.load_record(notification_id(offset, 0), decode_events(record.value, record.headers))
    ids = [n.id for n in table.select_notifications(None, 10)]
    assert ids == [1, 2, 3, 8193, 8194]
    assert table.max_notification_id() == 8194

    def select(start: int | None, stop: int | None = None, *, inclusive: bool = True) -> list[int]:
        found = table.select_notifications(start, 10, stop, inclusive_of_start=inclusive)
        return [n.id for n in found]

    assert select(2) == [2, 3, 8193, 8194]  # inside a record
    assert select(2, inclusive=False) == [3, 8193, 8194]
    assert select(4) == [8193, 8194]  # between records
    assert select(3, inclusive=False) == [8193, 8194]
    assert select(None, 2) == [1, 2]  # stop inside a record
    assert select(None, 5000) == [1, 2, 3]  # stop between records
    assert select(2, 8193) == [2, 3, 8193]
    assert [e.originator_version for e in table.select_events(a)] == [1, 2, 3]
    assert isinstance(table.select_events(a)[0].originator_id, UUID)


def test_replay_decoding_skips_the_events_of_a_record_already_seen() -> None:
    batch = [StoredEvent(uuid4(), 1, "dispatch.Ride.Requested", event_state(i)) for i in range(4)]
    (record,) = encode_events(batch)
    offset = 3
    first = notification_id(offset, 0)
    assert [e.position for e in decode_records(record.value, offset, 0)] == [
        first,
        first + 1,
        first + 2,
        first + 3,
    ]
    assert [e.position for e in decode_records(record.value, offset, 0, first + 1)] == [
        first + 2,
        first + 3,
    ]
    assert list(decode_records(record.value, offset, 0, first + 3)) == []
    assert [e.position for e in decode_records(record.value, offset, 0, first - 1)] == [
        first + i for i in range(4)
    ]
    _, old = encode_event(batch[0])  # a pre-batching record: one event
    (event,) = decode_records(old, offset, 0)
    assert (event.position, event.aggregate_id) == (first, str(batch[0].originator_id))
    # A state the codec cannot embed as JSON (here: leading space) travels as base64.
    spaced = StoredEvent(uuid4(), 1, "t", b" " + event_state(9))
    (record,) = encode_events([batch[0], spaced])
    assert json.loads(record.value)["events"][1]["state_encoding"] == "base64"
    _, second = decode_records(record.value, 0, 0)
    assert (second.position, second.data) == (2, {"i": 9})


def event_state(i: int) -> bytes:
    return json.dumps(
        {"timestamp": {"_type_": "datetime_iso", "_data_": "2024-01-01T00:00:00+00:00"}, "i": i}
    ).encode()


@pytest.mark.parametrize(
    ("start", "stop", "limit"),
    [(1, None, 10), (2, 8193, 10), (4, None, 1), (1, 2, 10), (9000, None, 10), (1, None, 0)],
)
def test_the_lean_rows_of_a_fold_list_what_the_notifications_do(
    start: int, stop: int | None, limit: int
) -> None:
    """``select_rows`` (a fold's read, no ``Notification`` made) gives the committed events
    ``select_notifications`` gives, their states and whole events a row at a time."""
    table = EventTable(monotonic=True)
    a, b = uuid4(), "text-id"
    by_text = StoredEvent(b, 1, "topic1", b"state1")
    for offset, batch in ((0, [stored(a, 1), stored(a, 2)]), (2, [by_text, stored(a, 3)])):
        (record,) = encode_events(batch)
        table.load_record(notification_id(offset, 0), decode_events(record.value, record.headers))
    table.add_pending([stored(a, 4)], [8195])  # pending: not listed
    expected = table.select_notifications(start, limit, stop)
    rows = table.select_rows(start, limit, stop)
    assert [(i, o, t) for i, o, t, _ in rows] == [
        (n.id, n.originator_id, n.topic) for n in expected
    ]
    assert all(isinstance(o, UUID) for _, o, _, _ in rows if o != b)
    assert [table.row_state(r) for *_, r in rows] == [n.state for n in expected]
    assert [table.row_notification(r) for *_, r in rows] == expected
