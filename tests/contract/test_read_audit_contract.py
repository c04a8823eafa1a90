"""The read-audit port (``dispatch.read_audit.ReadAudit``): the same cases over every
adapter, a SQLite file under the data dir and the ``operator-reads`` topic of the real
broker. A record is kept when ``record`` returns: a reader made afresh (another process's,
as `dispatch replay audit --reads` is) finds it, in the order kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatch.read_audit import ReadAudit, ReadRecord


@dataclass
class Store:
    """The adapter under test, a way to read what it kept from scratch, and a way to put a
    record in that is not one (a damaged or forged entry)."""

    audit: ReadAudit
    fresh_read: Callable[[], list[ReadRecord]]
    damage: Callable[[bytes], None]


def _sqlite(tmp_path: Path) -> Store:
    from dispatch.adapters.sqlite.readaudit import SqliteReadAudit, read_records

    path = tmp_path / "operator-reads.sqlite"

    def damage(body: bytes) -> None:
        with sqlite3.connect(path) as db:
            db.execute("INSERT INTO operator_reads (record) VALUES (?)", (body,))

    return Store(SqliteReadAudit(path), lambda: list(read_records(path)), damage)


def _kafka(topics: Any) -> Store:
    from kafka import KafkaProducer

    from dispatch.adapters.kafka.readaudit import KafkaReadAudit, read_kafka_records

    audit = KafkaReadAudit(topics.bootstrap, topics.prefix)

    def damage(body: bytes) -> None:
        producer = KafkaProducer(bootstrap_servers=topics.bootstrap)
        producer.send(audit.topic, body).get(timeout=10)
        producer.close()

    return Store(audit, lambda: list(read_kafka_records(topics.bootstrap, audit.topic)), damage)


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=pytest.mark.kafka)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = (
        _sqlite(tmp_path)
        if request.param == "sqlite"
        else _kafka(request.getfixturevalue("kafka_topics"))
    )
    yield made
    made.audit.close()


def _record(n: int, who: str = "vic") -> ReadRecord:
    return ReadRecord(
        1_767_600_000.0 + n,
        f"00000000-0000-5000-8000-00000000000{n % 10}",
        who,
        "viewer",
        "GET /rides/{ride_id}",
        {"ride_id": f"ride-{n}"},
        {"after": "0:12"},
        f"request-{n}",
        n % 3,
    )


def test_a_kept_record_is_read_back_whole_by_a_fresh_reader(store: Store) -> None:
    store.audit.record(_record(1))
    assert store.fresh_read() == [_record(1)]


def test_records_are_read_in_the_order_they_were_kept(store: Store) -> None:
    kept = [_record(n, who) for n, who in ((3, "vic"), (1, "ada"), (2, "vic"))]
    for record in kept:
        store.audit.record(record)
    assert store.fresh_read() == kept
    assert list(store.audit.read()) == kept


def test_a_store_with_nothing_kept_reads_empty(store: Store) -> None:
    assert store.fresh_read() == []


def test_the_store_keeps_recording_after_close(store: Store) -> None:
    store.audit.record(_record(1))
    store.audit.close()
    store.audit.record(_record(2))
    assert store.fresh_read() == [_record(1), _record(2)]


@pytest.mark.parametrize("body", [b"{}", b"not json", b'{"at": "noon"}'])
def test_a_damaged_record_stops_the_read_naming_where_it_is(store: Store, body: bytes) -> None:
    store.audit.record(_record(1))
    store.damage(body)
    store.audit.record(_record(2))
    with pytest.raises(ValueError, match="damaged"):
        store.fresh_read()
