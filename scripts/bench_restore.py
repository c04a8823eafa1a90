"""Restore time of one shard: how long until a worker taking it over is back in service.

Copies the events of an embedded log (a `dispatch simulate --data-dir DIR` run) into a
fresh Kafka events partition, then times what a worker does on assignment: open the
shard application (the Kafka module rebuilds its local store from the partition) and
fold the log into the matcher. The same is timed for the embedded SQLite shard.
Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path

from kafka_migrate import copy_shard

from dispatch.adapters.kafka.topics import create_topics, delete_topics
from dispatch.bootstrap import build_matcher, kafka_env, sqlite_env
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from dispatch.shard.worker import ShardWorker


def timed_restore(shard: int, env: dict[str, str], settings: Settings) -> dict[str, float]:
    started = time.perf_counter()
    app = ShardApplication(shard, env=env)
    app.recorder.max_notification_id()  # force the store to be loaded
    opened = time.perf_counter()
    worker = ShardWorker(
        shard, app, lambda: build_matcher(settings), None, time.time, outbox=object()
    )  # type: ignore[arg-type]
    events = worker.restore()
    done = time.perf_counter()
    app.close()
    return {
        "events": events,
        "open_s": opened - started,
        "matcher_fold_s": done - opened,
        "total_s": done - started,
        "events_per_s": events / (done - started),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path, help="an embedded log (shard 0 is used)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    results = {"sqlite": timed_restore(0, sqlite_env(args.data_dir, 0), settings)}
    prefix = f"bench-restore-{uuid.uuid4().hex[:6]}"
    create_topics(args.bootstrap, prefix, 1)
    env = kafka_env(args.bootstrap, prefix, 0)
    try:
        started = time.perf_counter()
        copied = copy_shard(args.data_dir / "shard-0000.sqlite", env, 0, limit=args.limit)
        results["kafka_copy"] = {"events": copied, "seconds": time.perf_counter() - started}
        results["kafka"] = timed_restore(0, env, settings)
    finally:
        delete_topics(args.bootstrap, prefix)
    print(json.dumps(results, indent=2) if args.json else results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
