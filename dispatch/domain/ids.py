"""Aggregate ids that carry their shard number, so any process can route from the id alone.

The shard is stored in the top 16 bits of the UUID. The version and variant bits of a
version-4 UUID live lower down and are left intact, so the ids stay valid UUIDs.
"""

from __future__ import annotations

import random
import uuid

SHARD_BITS = 16
MAX_SHARDS = 1 << SHARD_BITS
_SHIFT = 128 - SHARD_BITS
_LOW_MASK = (1 << _SHIFT) - 1


def new_id(shard: int, rng: random.Random | None = None) -> uuid.UUID:
    """A random version-4 UUID whose top 16 bits are ``shard``."""
    if not 0 <= shard < MAX_SHARDS:
        raise ValueError(f"shard must be in [0, {MAX_SHARDS}), got {shard}")
    base = uuid.UUID(int=rng.getrandbits(128), version=4) if rng else uuid.uuid4()
    return uuid.UUID(int=(shard << _SHIFT) | (base.int & _LOW_MASK))


def derived_id(shard: int, namespace: uuid.UUID, name: str) -> uuid.UUID:
    """A deterministic id (uuid5 of ``name``) placed in ``shard``."""
    base = uuid.uuid5(namespace, name)
    return uuid.UUID(int=(shard << _SHIFT) | (base.int & _LOW_MASK))


def shard_of(aggregate_id: uuid.UUID) -> int:
    """The shard number carried by an aggregate id."""
    return aggregate_id.int >> _SHIFT
