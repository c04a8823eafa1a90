"""Copy an embedded (SQLite) event log into the Kafka events topic, shard by shard.

For users moving from one machine to Kafka, and for benchmarks. Events keep their
aggregate ids, versions, types and state; positions become Kafka offsets. The topics must
exist and the target partitions should be empty (the copy refuses a version conflict).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from dispatch.adapters.sqlite.datadir import open_log
from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import kafka_env
from dispatch.shard.application import ShardApplication


def copy_shard(
    db: Path,
    env: dict[str, str],
    shard: int,
    batch: int = 5_000,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy one shard file into its partition, ``batch`` events per Kafka transaction."""
    app = ShardApplication(shard, env=env)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    sql = "SELECT originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    pending: list[StoredEvent] = []
    count = 0
    try:
        for oid, version, topic, state in conn.execute(sql):
            pending.append(StoredEvent(UUID(oid), version, topic, state))
            if len(pending) == batch:
                app.recorder.insert_events(pending)
                count += len(pending)
                pending = []
                if progress is not None:
                    progress(count)
        if pending:
            app.recorder.insert_events(pending)
            count += len(pending)
    finally:
        conn.close()
        app.close()
    return count


def copy_log(data_dir: Path, bootstrap: str, prefix: str, limit: int | None = None) -> int:
    source = SqliteLogSource(data_dir, shards=open_log(data_dir).shards)  # checked: names
    return sum(
        copy_shard(source.path(shard), kafka_env(bootstrap, prefix, shard), shard, limit=limit)
        for shard in source.shards()
        if source.head(shard)
    )
