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
import sqlite3
import time
import uuid
from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from dispatch.bootstrap import build_matcher, sqlite_env
from dispatch.kafka.topics import create_topics, delete_topics
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from dispatch.worker import ShardWorker


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


def copy_to_kafka(db: Path, env: dict[str, str], limit: int | None) -> int:
    app = ShardApplication(0, env=env)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    sql = (
        "SELECT originator_id, originator_version, topic, state FROM stored_events "
        "ORDER BY rowid" + (f" LIMIT {limit}" if limit else "")
    )
    batch: list[StoredEvent] = []
    count = 0
    for oid, version, topic, state in conn.execute(sql):
        batch.append(StoredEvent(UUID(oid), version, topic, state))
        if len(batch) == 5_000:
            app.recorder.insert_events(batch)
            count += len(batch)
            batch = []
    if batch:
        app.recorder.insert_events(batch)
        count += len(batch)
    conn.close()
    app.close()
    return count


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
    env = {
        "PERSISTENCE_MODULE": "dispatch.eventstore",
        "KAFKA_BOOTSTRAP_SERVERS": args.bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_SHARD": "0",
    }
    try:
        started = time.perf_counter()
        copied = copy_to_kafka(args.data_dir / "shard-0000.sqlite", env, args.limit)
        results["kafka_copy"] = {"events": copied, "seconds": time.perf_counter() - started}
        results["kafka"] = timed_restore(0, env, settings)
    finally:
        delete_topics(args.bootstrap, prefix)
    print(json.dumps(results, indent=2) if args.json else results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
