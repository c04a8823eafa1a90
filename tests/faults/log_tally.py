"""The log read apart from the API (fault 5, issue #16): the events topic read_committed by
a consumer of the test's own, each record parsed with the standard library's json, so
neither the API process nor the engine's decoding is the witness of what was written.

What it counts: the command records (``dispatch.CommandRecord.Handled``, one per command
the engine applied or refused, keyed by command id) and every event by type and aggregate.
``commands_consumed`` waits until the workers' group has committed every command sent so
far: then each of them is either decided (its record is in the log) or was never sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from dispatch.adapters.kafka.config import new_admin, new_consumer
from dispatch.adapters.kafka.eventstore.clients import end_offsets
from dispatch.adapters.kafka.processes import worker_env
from dispatch.adapters.kafka.topics import Topics
from dispatch.settings import Settings

RECORD = "dispatch.CommandRecord.Handled"


@dataclass
class LogTally:
    """Command records by command id and events by (type, aggregate id)."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    events: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, event: dict[str, Any]) -> None:
        state = event["state"]
        if isinstance(state, str):
            state = json.loads(state)
        kind, aggregate = event["topic"], str(event["originator_id"])
        self.events[(kind, aggregate)] += 1
        if kind == RECORD:
            self.records[state["command_id"]].append(state)

    def doubled(self) -> dict[str, int]:
        """Command ids recorded more than once."""
        return {cid: len(rs) for cid, rs in self.records.items() if len(rs) > 1}

    def of_type(self, kind: str) -> Counter[str]:
        return Counter({a: n for (k, a), n in self.events.items() if k == kind})


def read_log(settings: Settings, timeout_s: float = 60.0) -> LogTally:
    """Every committed event of the deployment's events topic, every shard."""
    assert settings.kafka_bootstrap is not None
    topic = Topics(settings.topic_prefix).events
    consumer = new_consumer(settings.kafka_bootstrap, group_id=None)
    tally = LogTally()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.shards)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = end_offsets(consumer, tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "the events topic was not read to its end"
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    value = json.loads(record.value)
                    for event in value.get("events", [value]):
                        tally.add(event)
    finally:
        consumer.close()
    return tally


def commands_consumed(settings: Settings, timeout_s: float = 120.0) -> None:
    """Wait until the workers' group has committed the commands topic up to its end as it is
    now (offsets commit in the batch transactions: a command consumed is decided)."""
    assert settings.kafka_bootstrap is not None
    topic = Topics(settings.topic_prefix).commands
    consumer = new_consumer(settings.kafka_bootstrap, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.shards)]
        ends = end_offsets(consumer, tps)
    finally:
        consumer.close()
    admin = new_admin(settings.kafka_bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            group = f"{settings.topic_prefix}.workers"
            done = admin.list_group_offsets({group: tps})[group]
            behind = {
                tp: e for tp, e in ends.items() if e and (tp not in done or done[tp].offset < e)
            }
            if not behind:
                return
            assert time.monotonic() < deadline, f"the workers never consumed {behind}"
            time.sleep(0.5)
    finally:
        admin.close()


def replay_verify(settings: Settings) -> subprocess.CompletedProcess[str]:
    """``dispatch replay verify`` over the deployment, in a process of its own."""
    assert settings.kafka_bootstrap is not None
    return subprocess.run(
        [sys.executable, "-m", "dispatch", "replay", "verify", "--kafka", settings.kafka_bootstrap],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=600,
    )
