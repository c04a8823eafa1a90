"""Replay throughput over a large log: `replay verify` and `replay rebuild --all`, from the
embedded SQLite log and from Kafka (the same log copied into a fresh events topic).

Make a log first, e.g. `dispatch simulate --drivers 4000 --minutes 250 --data-dir DIR`
(about 1M events). Each figure is the median of --rounds runs. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka_migrate import copy_log

from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.adapters.kafka.topics import create_topics, delete_topics
from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.log import LogSource
from dispatch.replay import operations as op


def timed(run: Callable[[], int], rounds: int) -> dict[str, float]:
    rates, events = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        events = run()
        rates.append(events / (time.perf_counter() - started))
    return {
        "events": events,
        "events_per_s": statistics.median(rates),
        "runs": [round(r) for r in rates],
    }


def measure(source: LogSource, rounds: int) -> dict[str, dict[str, float]]:
    def verify() -> int:
        events, violations = op.verify(source)
        assert not violations, violations[:3]
        return events

    def rebuild() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            return op.rebuild(source, Path(tmp), None).events

    return {"verify": timed(verify, rounds), "rebuild_all": timed(rebuild, rounds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {"embedded": measure(SqliteLogSource(args.data_dir), args.rounds)}
    if not args.skip_kafka:
        prefix = f"bench-replay-{uuid.uuid4().hex[:6]}"
        shards = max(SqliteLogSource(args.data_dir).shards()) + 1
        create_topics(args.bootstrap, prefix, shards)
        try:
            started = time.perf_counter()
            copied = copy_log(args.data_dir, args.bootstrap, prefix)
            results["kafka_copy"] = {"events": copied, "seconds": time.perf_counter() - started}
            results["kafka"] = measure(KafkaLogSource(args.bootstrap, prefix), args.rounds)
        finally:
            delete_topics(args.bootstrap, prefix)
    print(json.dumps(results, indent=2) if args.json else results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
