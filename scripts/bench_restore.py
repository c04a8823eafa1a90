"""Restore time of one shard: how long until a worker taking it over is back in service.

Copies the events of an embedded log (a `dispatch simulate --data-dir DIR` run) into a
fresh Kafka events partition, then times what a worker does on assignment: open the
shard application (the Kafka module rebuilds its local store from the partition) and
fold the log into the matcher. The same is timed for the embedded SQLite shard. Then,
on both, a checkpoint of the folded state at the log's end is written (SQLite: into a
copy of the shard file; Kafka: into the checkpoints topic, in a transaction, as a worker
does) and the restore is timed again: the checkpoint read and loaded, then the tail
(empty here) folded. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kafka_migrate import copy_shard

from dispatch.adapters.kafka.checkpoints import CheckpointRecords, KafkaCheckpointStore
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.bootstrap import build_matcher, kafka_env, sqlite_env
from dispatch.checkpoints import CheckpointStore, encode_chunks
from dispatch.matching.state import capture
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from dispatch.shard.worker import ShardWorker


def timed_restore(shard: int, env: dict[str, str], settings: Settings) -> dict[str, float]:
    started = time.perf_counter()
    app = ShardApplication(shard, env=env)
    app.recorder.max_notification_id()  # force the store to be loaded
    opened = time.perf_counter()
    worker = ShardWorker(shard, app, lambda: build_matcher(settings), time.time)
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


def checkpoint_restore(
    shard: int, env: dict[str, str], settings: Settings, bootstrap: str | None, prefix: str
) -> dict[str, float]:
    """Write a checkpoint of the folded log, then time a restore that uses it."""
    app = ShardApplication(shard, env=env)
    worker = ShardWorker(shard, app, lambda: build_matcher(settings), time.time)
    worker.restore()
    position = app.position()
    chunks = list(
        encode_chunks(capture(worker.matcher), position, worker.last_event_time, time.time(),
                      settings.checkpoint_chunk_rows)
    )  # fmt: skip
    topic = Topics(prefix).checkpoints
    if bootstrap is None:
        for chunk in chunks:
            app.recorder.insert_events([], checkpoint=chunk)
    else:
        records = CheckpointRecords(topic, shard)
        with app.recorder.transaction() as producer:  # type: ignore[attr-defined]
            for chunk in chunks:
                records.send(producer, chunk)
    app.close()
    started = time.perf_counter()
    app = ShardApplication(shard, env=env)
    app.recorder.max_notification_id()  # force the store to be loaded
    opened = time.perf_counter()
    store: CheckpointStore = (
        app.recorder if bootstrap is None else KafkaCheckpointStore(bootstrap, topic, shard)
    )  # type: ignore[assignment]
    worker = ShardWorker(
        shard, app, lambda: build_matcher(settings), time.time, checkpoint_store=store
    )
    tail = worker.restore()
    done = time.perf_counter()
    assert worker.restored_from == position, "the checkpoint just written was not used"
    app.close()
    return {
        "chunks": len(chunks),
        "chunk_bytes": sum(len(c.data) for c in chunks),
        "tail_events": tail,
        "open_s": opened - started,
        "checkpoint_and_tail_s": done - opened,
        "total_s": done - started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path, help="an embedded log (shard 0 is used)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    results: dict[str, Any] = {"sqlite": timed_restore(0, sqlite_env(args.data_dir, 0), settings)}
    with tempfile.TemporaryDirectory() as tmp:  # the checkpoint goes into a copy
        shutil.copy(args.data_dir / "shard-0000.sqlite", Path(tmp) / "shard-0000.sqlite")
        env = sqlite_env(Path(tmp), 0)
        results["sqlite_checkpoint"] = checkpoint_restore(0, env, settings, None, "")
    prefix = f"bench-restore-{uuid.uuid4().hex[:6]}"
    create_topics(args.bootstrap, prefix, 1)
    env = kafka_env(args.bootstrap, prefix, 0)
    try:
        started = time.perf_counter()
        copied = copy_shard(args.data_dir / "shard-0000.sqlite", env, 0, limit=args.limit)
        results["kafka_copy"] = {"events": copied, "seconds": time.perf_counter() - started}
        results["kafka"] = timed_restore(0, env, settings)
        results["kafka_checkpoint"] = checkpoint_restore(0, env, settings, args.bootstrap, prefix)
    finally:
        delete_topics(args.bootstrap, prefix)
    print(json.dumps(results, indent=2) if args.json else results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
