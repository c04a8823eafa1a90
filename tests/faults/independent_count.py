"""The fault tests' independent count of a deployment's log (issue #16): commands, outcomes
and events read by Kafka's own console consumer (read_committed, tests/local_cluster.py),
parsed here with the standard library's json, so a fault in the project's Kafka client or
its decoding cannot hide itself. The events are then checked by the repo's invariant
checker (``replay verify``'s own function, over a log source made of what the console
consumer read): versions gapless and unique, legal transitions, no driver on two rides.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from local_cluster import Cluster, ConsoleRecord, console_read

from dispatch.adapters.kafka.eventstore.codec import notification_id
from dispatch.adapters.kafka.topics import Topics
from dispatch.invariants import Violation
from dispatch.log import LogEvent, LogSource, flatten, from_state
from dispatch.replay.operations import verify

# Answers that are not final: the command goes on to the shard the driver went to.
NOT_FINAL = frozenset({"moved", "not_here_yet"})


@dataclass(frozen=True)
class LogCount:
    commands: Counter[str]  # command id -> records on the commands topic
    outcomes: dict[str, list[str]]  # command id -> the codes of its outcomes, in log order
    events: dict[int, list[LogEvent]]  # shard -> its events, in log order
    doubled: list[tuple[str, int]]  # (aggregate id, version) written more than once
    checked: int  # events the invariant checker folded
    violations: list[Violation]
    # (topic, partition) -> the CreateTime (ms) of each record of the outcomes and events
    written: dict[tuple[str, int], list[int]]

    @property
    def event_count(self) -> int:
        return sum(len(events) for events in self.events.values())

    def finals(self) -> dict[str, list[str]]:
        """Each command's final outcomes (a ``moved`` answer is not one)."""
        return {
            cid: [code for code in codes if code not in NOT_FINAL]
            for cid, codes in self.outcomes.items()
        }


class ConsoleLog(LogSource):
    """A log source over events already read (the invariant checker's input)."""

    def __init__(self, events: dict[int, list[LogEvent]]) -> None:
        self._events = events

    def shards(self) -> list[int]:
        return sorted(self._events)

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        return (e for e in self._events.get(shard, []) if e.position > after)

    def head(self, shard: int) -> int | None:
        events = self._events.get(shard)
        return events[-1].position if events else 0

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        raise NotImplementedError("the independent count reads folds, not histories")

    def close(self) -> None:
        pass


def count_log(cluster: Cluster, prefix: str, log_dir: Path) -> LogCount:
    """Read the commands, outcomes and events topics of ``prefix`` (three console
    consumers side by side, logging under ``log_dir``) and count them."""
    topics = Topics(prefix)
    classpath = cluster.classpath()
    names = (topics.commands, topics.outcomes, topics.events)
    with ThreadPoolExecutor(len(names)) as pool:
        commands, outcomes, events = pool.map(
            lambda topic: console_read(classpath, cluster.bootstrap, topic, log_dir / topic),
            names,
        )
    by_shard = _events(events)
    seen = Counter((e.aggregate_id, e.version) for es in by_shard.values() for e in es)
    checked, violations = verify(ConsoleLog(by_shard))
    codes: dict[str, list[str]] = defaultdict(list)
    for r in sorted(outcomes, key=lambda r: (r.partition, r.offset)):
        outcome = json.loads(r.value)
        codes[outcome["command_id"]].append(outcome["code"])
    return LogCount(
        commands=Counter(json.loads(r.value)["command_id"] for r in commands),
        outcomes=dict(codes),
        events=by_shard,
        doubled=sorted(key for key, n in seen.items() if n > 1),
        checked=checked,
        violations=violations,
        written=_written({topics.outcomes: outcomes, topics.events: events}),
    )


def _written(by_topic: dict[str, list[ConsoleRecord]]) -> dict[tuple[str, int], list[int]]:
    written: dict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, records in by_topic.items():
        for r in records:
            written[topic, r.partition].append(r.timestamp_ms)
    return dict(written)


def _events(records: list[ConsoleRecord]) -> dict[int, list[LogEvent]]:
    """The events of the events topic's records by shard (= partition), in log order, at
    the positions the project's readers give them (docs/EVENTS.md: the ``index``-th event
    of the record at ``offset``)."""
    by_shard: dict[int, list[LogEvent]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        value: dict[str, Any] = json.loads(r.value)
        batch = value.get("events", [value])  # a record of one event, written before batches
        for index, stored in enumerate(batch):
            assert stored["state_encoding"] == "json", stored["state_encoding"]
            by_shard[r.partition].append(
                from_state(
                    r.partition,
                    notification_id(r.offset, index),
                    stored["originator_id"],
                    int(stored["originator_version"]),
                    stored["topic"],
                    flatten(stored["state"]),
                )
            )
    return dict(by_shard)
