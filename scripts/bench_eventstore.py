#!/usr/bin/env python
"""Benchmark the Kafka event store beside eventsourcing's SQLite module, in one run.

Measures (nothing is asserted about time):
- append: events/s and transactions/s for inserts of 1, 10 and 100 events (one transaction
  each), through the application recorder;
- restore: a new application on a shard holding --events events (time to rebuild the local
  store from the partition; SQLite just opens its file), then ``repository.get`` rate and a
  raw ``select_notifications`` replay rate.

Usage: .venv/bin/python scripts/bench_eventstore.py [--bootstrap 127.0.0.1:9092]
       [--events 100000] [--gets 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from dispatch.adapters.kafka.topics import create_topics, delete_topics

EVENTS_PER_AGGREGATE = 5
SAVE_BATCH = 200  # aggregates per save while filling (1,000 events per transaction)


class Tally(Aggregate):
    TOPIC = "bench.Tally"

    class Event(Aggregate.Event):
        pass

    class Created(Aggregate.Created):
        TOPIC = "bench.Tally.Started"
        name: str

    class Counted(Event):
        TOPIC = "bench.Tally.Counted"
        amount: int

        def apply(self, aggregate: Tally) -> None:
            aggregate.total += self.amount

    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0

    @classmethod
    def start(cls, name: str) -> Tally:
        return cls._create(cls.Created, name=name)

    def count(self, amount: int) -> None:
        self.trigger_event(self.Counted, amount=amount)


class Tallies(Application[UUID]):
    name = "bench"


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_append(env: dict[str, str], batch: int, inserts: int) -> dict[str, float]:
    app = Tallies(env=env)
    recorder = app.recorder
    state = (
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00+00:00"},"amount":1}'
    )

    def insert() -> None:
        agg = uuid4()
        recorder.insert_events(
            [StoredEvent(agg, v, "bench.Tally.Counted", state) for v in range(1, batch + 1)]
        )

    for _ in range(5):  # warm up
        insert()
    started = time.perf_counter()
    for _ in range(inserts):
        insert()
    elapsed = time.perf_counter() - started
    app.close()
    return {"events_per_s": inserts * batch / elapsed, "transactions_per_s": inserts / elapsed}


def fill(env: dict[str, str], events: int) -> list[UUID]:
    app = Tallies(env=env)
    ids: list[UUID] = []
    pending: list[Tally] = []
    for i in range(events // EVENTS_PER_AGGREGATE):
        tally = Tally.start(f"t{i}")
        for amount in range(1, EVENTS_PER_AGGREGATE):
            tally.count(amount)
        pending.append(tally)
        ids.append(tally.id)
        if len(pending) == SAVE_BATCH:
            app.save(*pending)
            pending.clear()
    app.save(*pending)
    app.close()
    return ids


def bench_restore(env: dict[str, str], ids: list[UUID], gets: int) -> dict[str, float]:
    rss_before = rss_mb()
    started = time.perf_counter()
    app = Tallies(env=env)
    open_s = time.perf_counter() - started
    rss_after = rss_mb()
    sample = ids[:: max(1, len(ids) // gets)][:gets]
    started = time.perf_counter()
    for agg_id in sample:
        app.repository.get(agg_id)
    get_rate = len(sample) / (time.perf_counter() - started)
    started, count, start = time.perf_counter(), 0, 1
    while page := app.recorder.select_notifications(start, 1000):
        count += len(page)
        start = page[-1].id + 1
    replay_rate = count / (time.perf_counter() - started)
    app.close()
    return {
        "open_s": open_s,
        "events": count,
        "restore_events_per_s": count / open_s,
        "rss_growth_mb": rss_after - rss_before,
        "gets_per_s": get_rate,
        "raw_replay_events_per_s": replay_rate,
    }


@contextmanager
def kafka_env(bootstrap: str) -> Iterator[Callable[[int], dict[str, str]]]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, prefix, partitions=4)
    try:
        yield lambda shard: {
            "PERSISTENCE_MODULE": "dispatch.adapters.kafka.eventstore",
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_PREFIX": prefix,
            "KAFKA_SHARD": str(shard),
        }
    finally:
        delete_topics(bootstrap, prefix)


@contextmanager
def sqlite_env() -> Iterator[Callable[[int], dict[str, str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        yield lambda shard: {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": os.path.join(tmp, f"shard-{shard}.sqlite"),
        }


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    plans = {1: 300, 10: 200, 100: 60}
    for name, backend in (("kafka", kafka_env(args.bootstrap)), ("sqlite", sqlite_env())):
        with backend as env:
            out: dict[str, Any] = {}
            for shard, (batch, inserts) in enumerate(plans.items()):
                out[f"append_batch_{batch}"] = bench_append(env(shard), batch, inserts)
            ids = fill(env(3), args.events)
            out["restore"] = bench_restore(env(3), ids, args.gets)
            results[name] = out
    return results


def print_table(results: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str]] = []
    for batch in (1, 10, 100):
        key = f"append_batch_{batch}"
        rows.append(
            (
                f"append, {batch} event(s)/transaction: events/s (tx/s)",
                *(
                    f"{r[key]['events_per_s']:,.0f} ({r[key]['transactions_per_s']:,.0f})"
                    for r in (results["kafka"], results["sqlite"])
                ),
            )
        )
    labels = {
        "open_s": ("open a shard of N events: seconds", "{:.2f}"),
        "restore_events_per_s": ("  = events restored/s", "{:,.0f}"),
        "rss_growth_mb": ("  RSS growth, MB", "{:.0f}"),
        "gets_per_s": ("repository.get: aggregates/s", "{:,.0f}"),
        "raw_replay_events_per_s": ("select_notifications replay: events/s", "{:,.0f}"),
    }
    for key, (label, fmt) in labels.items():
        rows.append(
            (
                label,
                fmt.format(results["kafka"]["restore"][key]),
                fmt.format(results["sqlite"]["restore"][key]),
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'kafka':>16}  {'sqlite':>16}")
    for label, kafka, sqlite in rows:
        print(f"{label:{width}}  {kafka:>16}  {sqlite:>16}")
    n = results["kafka"]["restore"]["events"]
    print(f"(N = {n:,} events, {EVENTS_PER_AGGREGATE} per aggregate)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap", default=os.environ.get("DISPATCH_TEST_KAFKA", "127.0.0.1:9092")
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--gets", type=int, default=5_000)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
