"""The log-source port (``dispatch.log.LogSource``): the same cases over every adapter, the
embedded log's shard files and the events topic (read once, by replay, and followed, by
the API's views), as eventsourcing runs one test case per recorder over each backend.

The log is written by the domain's aggregates through eventsourcing, on the persistence
module the adapter reads (SQLite files, or the Kafka event store)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.application import Application

from dispatch.bootstrap import kafka_env, sqlite_env
from dispatch.domain.driver import Driver
from dispatch.domain.ids import new_id
from dispatch.log import LogEvent, LogSource

SHARDS = 2
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
REGISTERED, ONLINE, OFFLINE = (
    Driver.Created.TOPIC,
    Driver.WentOnline.TOPIC,
    Driver.WentOffline.TOPIC,
)


@dataclass
class Log:
    """A log of ``SHARDS`` shards, written through one application per shard, and the
    adapter under test reading it. ``tells_head``: whether its ``head`` knows the last
    position (the port allows None)."""

    source: LogSource
    tells_head: bool
    env: Callable[[int], dict[str, str]]
    apps: dict[int, Application[Any]] = field(default_factory=dict)

    def app(self, shard: int) -> Application[Any]:
        if shard not in self.apps:
            self.apps[shard] = Application(env=self.env(shard))
        return self.apps[shard]

    def driver(self, shard: int, events: int = 3) -> Driver:
        """A driver in ``shard`` with its first ``events`` events (registered, online,
        offline), saved at once."""
        driver = Driver.register(new_id(shard), "Dee", T0)
        if events >= 2:
            driver.go_online(T0 + timedelta(seconds=1))
        if events >= 3:
            driver.go_offline(False, T0 + timedelta(seconds=2))
        self.app(shard).save(driver)
        return driver

    def close(self) -> None:
        self.source.close()
        for app in self.apps.values():
            app.close()


def _sqlite(tmp_path: Path) -> Log:
    from dispatch.adapters.sqlite.logsource import SqliteLogSource

    log = Log(SqliteLogSource(tmp_path, shards=SHARDS), True, lambda s: sqlite_env(tmp_path, s))
    for shard in range(SHARDS):  # every shard file exists, with its table
        log.app(shard)
    return log


def _kafka(topics: Any, follow: bool) -> Log:
    from dispatch.adapters.kafka.logsource import KafkaFollowSource, KafkaLogSource

    kind = KafkaFollowSource if follow else KafkaLogSource
    source = kind(topics.bootstrap, topics.prefix)
    return Log(source, False, lambda s: kafka_env(topics.bootstrap, topics.prefix, s))


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("kafka", marks=pytest.mark.kafka),
        pytest.param("kafka-follow", marks=pytest.mark.kafka),
    ]
)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    if request.param == "sqlite":
        made = _sqlite(tmp_path)
    else:
        made = _kafka(request.getfixturevalue("kafka_topics"), request.param == "kafka-follow")
    yield made
    made.close()


def positions(events: list[LogEvent]) -> list[int]:
    return [e.position for e in events]


def settled(log: Log, shard: int, after: int = 0, at_least: int = 1) -> list[LogEvent]:
    """A read that returns once it holds ``at_least`` events (or after 10 s). On Kafka a
    read_committed reader sees a transaction once its commit marker lands, a moment after
    the commit returns; a log source promises every committed event, not at once."""
    deadline = time.monotonic() + 10
    while True:
        events = list(log.source.read(shard, after))
        if len(events) >= at_least or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_the_shards_are_the_logs_shards(log: Log) -> None:
    assert log.source.shards() == list(range(SHARDS))


def test_a_read_gives_the_shards_events_in_log_order_decoded(log: Log) -> None:
    first, second = log.driver(0), log.driver(0, events=2)
    other = log.driver(1, events=1)

    events = settled(log, 0, at_least=5)

    expected = [(str(first.id), v, t) for v, t in enumerate((REGISTERED, ONLINE, OFFLINE), 1)]
    expected += [(str(second.id), 1, REGISTERED), (str(second.id), 2, ONLINE)]
    assert [(e.aggregate_id, e.version, e.topic) for e in events] == expected
    assert {e.shard for e in events} == {0}
    assert positions(events) == sorted(set(positions(events))) and events[0].position > 0
    assert events[0].at == T0.timestamp() and events[0].data["name"] == "Dee"
    assert events[1].kind == "Driver.WentOnline"
    assert [(e.shard, e.aggregate_id) for e in settled(log, 1)] == [(1, str(other.id))]


def test_a_read_after_a_position_gives_only_the_later_events(log: Log) -> None:
    log.driver(0)
    log.driver(0)
    everything = positions(settled(log, 0, at_least=6))

    for i, position in enumerate(everything):
        assert positions(list(log.source.read(0, position))) == everything[i + 1 :]
    assert list(log.source.read(0, everything[-1])) == []


def test_pages_hold_the_events_a_read_gives(log: Log) -> None:
    for _ in range(3):
        log.driver(0)
    events = settled(log, 0, at_least=9)

    for after in (0, events[0].position, events[4].position):
        paged = [e for page in log.source.read_pages(0, after) for e in page]
        assert paged == [e for e in events if e.position > after]
        assert all(page for page in log.source.read_pages(0, after)), "no empty page"


def test_a_later_read_from_the_last_position_gives_only_what_is_new(log: Log) -> None:
    log.driver(0)
    last = settled(log, 0)[-1].position
    newer = log.driver(0, events=2)

    fresh = settled(log, 0, last, at_least=2)
    assert [(e.aggregate_id, e.version) for e in fresh] == [(str(newer.id), 1), (str(newer.id), 2)]
    assert list(log.source.read(0, fresh[-1].position)) == []

    log.source.close()  # a closed source can be read again
    assert settled(log, 0, last, at_least=2) == fresh


def test_an_empty_shard_reads_as_no_events(log: Log) -> None:
    log.driver(0)
    assert list(log.source.read(1)) == []
    assert [page for page in log.source.read_pages(1)] == []


def test_the_head_is_the_last_position_where_the_source_tells_it(log: Log) -> None:
    log.app(0)
    assert log.source.head(0) == (0 if log.tells_head else None)
    log.driver(0)
    last = settled(log, 0, at_least=3)[-1].position
    assert log.source.head(0) == (last if log.tells_head else None)


def test_a_cut_holds_every_event_committed_before_it_and_none_committed_after(log: Log) -> None:
    """What ``replay verify`` reads each shard to: the log as of one moment, even on a
    source that cannot tell its head."""
    first = log.driver(0)
    before = settled(log, 0, at_least=3)

    cut = log.source.cut(0)
    later = log.driver(0)
    after = settled(log, 0, at_least=6)

    assert cut is not None
    assert log.source.cut(1) == 0, "an empty shard's cut"
    assert {e.aggregate_id for e in before} == {str(first.id)}
    assert all(e.position <= cut for e in before)
    assert [(e.aggregate_id, e.version) for e in after if e.position > cut] == [
        (str(later.id), 1),
        (str(later.id), 2),
        (str(later.id), 3),
    ]


def test_stored_events_are_one_aggregates_in_version_order(log: Log) -> None:
    driver = log.driver(0)
    log.driver(0)

    stored = log.source.stored_events(0, driver.id)

    assert [(s.originator_id, s.originator_version) for s in stored] == [
        (driver.id, 1),
        (driver.id, 2),
        (driver.id, 3),
    ]
    assert [s.topic for s in stored] == [REGISTERED, ONLINE, OFFLINE]
    assert log.source.stored_events(0, uuid4()) == []
    assert log.source.stored_events(SHARDS + 5, driver.id) == [], "a shard the log lacks"


def test_a_read_to_its_last_event_says_it_reached_the_end_it_began_with(log: Log) -> None:
    """What a view's age is measured by (``ProjectionRunner.caught_up_at``): a read that
    went to the end the shard had when it began says so; one left before its end (a
    follower's reader that stopped) does not, where the source can fall short."""
    from dispatch.adapters.kafka.logsource import KafkaFollowSource

    log.driver(0)
    settled(log, 0, at_least=3)
    assert list(log.source.read(0)) and log.source.reached_end(0)
    assert list(log.source.read(1)) == [] and log.source.reached_end(1), "an empty shard"
    if not isinstance(log.source, KafkaFollowSource):
        return
    log.driver(0)
    settled(log, 0, at_least=6)
    partial = log.source.read(0)
    next(partial)  # left after its first event
    partial.close()
    assert not log.source.reached_end(0)
