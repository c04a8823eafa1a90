"""A one-shard deployment on the test broker, on topics of its own (made, then deleted)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

from dispatch.adapters.kafka.topics import create_topics, delete_topics
from dispatch.settings import Settings


def one_shard(bootstrap: str, data_dir: Path, name: str) -> Iterator[Settings]:
    """Yield the settings of a deployment with topics ``test-<name>-<random>``."""
    prefix = f"test-{name}-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, prefix, 1)
    try:
        yield Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, shards=1, data_dir=data_dir)
    finally:
        delete_topics(bootstrap, prefix)
