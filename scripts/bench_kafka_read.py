"""Read throughput of one Kafka events partition: ``KafkaLogSource.read`` and the store
restore (``restore_events`` into a fresh ``EventTable``), in events a second.

Copies shard 0 of an embedded log (a `dispatch simulate --data-dir DIR` run) into a fresh
events topic (``copy_shard``, 5,000 events per insert), measures, deletes the topics.
Each figure is the median of --rounds runs. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka_migrate import copy_shard

from dispatch.adapters.kafka.eventstore.restore import restore_events
from dispatch.adapters.kafka.eventstore.store import EventTable
from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.bootstrap import kafka_env


def timed(run: Callable[[], int], rounds: int) -> dict[str, object]:
    rates, events = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        events = run()
        rates.append(events / (time.perf_counter() - started))
    return {"events": events, "events_per_s": round(statistics.median(rates)), "runs": rates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    prefix = f"bench-read-{uuid.uuid4().hex[:6]}"
    create_topics(args.bootstrap, prefix, 1)
    results: dict[str, object] = {}
    try:
        env = kafka_env(args.bootstrap, prefix, 0)
        started = time.perf_counter()
        copied = copy_shard(args.data_dir / "shard-0000.sqlite", env, 0, limit=args.limit)
        results["copy"] = {"events": copied, "seconds": round(time.perf_counter() - started, 2)}
        source = KafkaLogSource(args.bootstrap, prefix)
        results["logsource_read"] = timed(lambda: sum(1 for _ in source.read(0)), args.rounds)

        def restore() -> int:
            table = EventTable(monotonic=True)
            restore_events(args.bootstrap, Topics(prefix).events, 0, table, 300.0)
            return len(table)

        results["store_restore"] = timed(restore, args.rounds)
    finally:
        delete_topics(args.bootstrap, prefix)
    for value in results.values():
        if isinstance(value, dict) and "runs" in value:
            value["runs"] = [round(r) for r in value["runs"]]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
