"""On the real broker: `dispatch serve` on Kafka starts from the views it kept and follows
the events topic from their positions on.

A simulated embedded log is copied into the events topic in three parts. A serving
process folds the first part and stops (keeping its views); the second part is written;
a new serving process takes the kept views up (their positions are the first part's end)
and folds the second part alone; then it follows the third part as it comes. Each time
its views equal a fold of the whole topic."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from unittest.mock import patch
from uuid import UUID

import pytest
from conftest import KafkaTestTopics
from eventsourcing.persistence import StoredEvent
from views_log import MARKETS, RETENTION_S, comparable, fold, new_views, simulate

from dispatch.adapters.kafka.logsource import KafkaLogSource
from dispatch.bootstrap import build_runtime
from dispatch.runtime import Runtime
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication

pytestmark = pytest.mark.kafka


def copy_part(log_dir: Path, topics: KafkaTestTopics, shard: int, rows: tuple[int, int]) -> int:
    """Events ``rows`` (rowids, first exclusive, last inclusive) of a shard file into the
    shard's events partition, in one Kafka transaction."""
    conn = sqlite3.connect(log_dir / f"shard-{shard:04d}.sqlite")
    try:
        found = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events "
            "WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
            rows,
        ).fetchall()
    finally:
        conn.close()
    app = ShardApplication(shard, env=topics.env(shard))
    try:
        app.recorder.insert_events([StoredEvent(UUID(o), v, t, s) for o, v, t, s in found])
    finally:
        app.close()
    return len(found)


def whole_topic(topics: KafkaTestTopics) -> dict[str, object]:
    source = KafkaLogSource(topics.bootstrap, topics.prefix)
    return comparable(fold(source, new_views()))


def test_serve_on_kafka_starts_from_kept_views_and_follows_the_tail(
    kafka_topics: KafkaTestTopics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_dir = tmp_path / "log"
    # The log is written in the clear, as before sealing: its events are copied into the
    # topic, but its keys (subject-keys.sqlite) would not be, and a Kafka reader waits for
    # a key it does not know (KeyNotYetKnown, docs/PRIVACY.md) token after token.
    with patch("dispatch.bootstrap.build_sealer", return_value=None):
        simulate(log_dir, minutes=12)
    heads = {}
    for shard in (0, 1):
        with sqlite3.connect(log_dir / f"shard-{shard:04d}.sqlite") as conn:
            heads[shard] = conn.execute("SELECT max(rowid) FROM stored_events").fetchone()[0]
    cuts = [{s: int(h * f) for s, h in heads.items()} for f in (0.0, 0.5, 0.9, 1.0)]

    def write_part(i: int) -> None:
        for shard in (0, 1):
            copy_part(log_dir, kafka_topics, shard, (cuts[i][shard], cuts[i + 1][shard]))

    settings = Settings(
        kafka_bootstrap=kafka_topics.bootstrap,
        topic_prefix=kafka_topics.prefix,
        shards=2,
        data_dir=tmp_path / "serve",
        markets=MARKETS,
        ended_ride_retention_s=RETENTION_S,
    )
    write_part(0)
    first = build_runtime(settings)
    first.start()
    first.stop()  # keeps its views
    kept = {s: first.views.position(s) for s in (0, 1)}
    assert all(kept.values())

    write_part(1)
    with caplog.at_level(logging.INFO):
        second = build_runtime(settings)
    assert "views taken up" in caplog.text
    assert {s: second.views.position(s) for s in (0, 1)} == kept  # before any fold
    second.start()
    try:
        assert "folding the whole log" not in caplog.text
        assert now(second) == whole_topic(kafka_topics)

        write_part(2)  # followed as it comes
        deadline = time.monotonic() + 30
        expected = whole_topic(kafka_topics)
        while now(second) != expected:
            assert time.monotonic() < deadline, "the tail was not followed"
            time.sleep(0.2)
    finally:
        second.stop()


def now(runtime: Runtime) -> dict[str, object]:
    with runtime.views.lock:  # the runner folds on its own thread
        return comparable(runtime.views)
