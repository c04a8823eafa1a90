"""Topic names, the topic table, and the functions that create and check the topics.

Every topic name is ``<prefix>.<role>`` (default prefix ``dispatch``). The co-partitioned
topics (commands, locations, shard-messages, events, snapshots, outcomes, checkpoints,
driver-availability, subject-keys, command-keys) all
have one partition per shard: partition ``n`` of each belongs to shard ``n`` (on
shard-messages, the messages and acks other shards send shard ``n``). Partition counts are
fixed at creation; over-provision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatch.adapters.kafka.config import new_admin
from dispatch.adapters.kafka.durability import (
    UNREADABLE,
    Durability,
    durability_problems,
    registered_brokers,
    strengthen,
    topic_configs,
)
from dispatch.adapters.kafka.eventstore.clients import DEFAULT_PREFIX, topic_name
from dispatch.adapters.kafka.eventstore.connection import Connection

DEAD_LETTER_PARTITIONS = 1
_DAY_MS = 24 * 60 * 60 * 1000
_TOPIC_ALREADY_EXISTS = 36
PROPAGATION_WAIT_S = 0.2  # between two looks at topics just created
ADMIN_MARGIN_MS = 5_000  # a CreateTopics / DeleteTopics request's room past its own timeout


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """The shape of one topic: its role, configs and partitioning.

    ``partitions`` is None for co-partitioned topics (they get the shard count) and a fixed
    count otherwise.
    """

    role: str
    configs: Mapping[str, str]
    partitions: int | None = None

    @property
    def co_partitioned(self) -> bool:
        return self.partitions is None

    def name(self, prefix: str = DEFAULT_PREFIX) -> str:
        return topic_name(prefix, self.role)

    def partition_count(self, shards: int) -> int:
        return shards if self.partitions is None else min(self.partitions, shards)


def _delete_after(ms: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(ms)}


_COMPACT_OFTEN = {
    "cleanup.policy": "compact",
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}

# The key of each data subject (adapters/kafka/keystore.py, docs/PRIVACY.md): compacted,
# and an erased key's record leaves the brokers' logs within about two hours once the
# partition is written to again (a segment rolls by time only on an append). A segment
# rolls within the hour and is compacted within the hour whatever its dirty ratio; the
# tombstone (no key in it) stays a day, so a reader that was behind still sees the key go.
_SUBJECT_KEYS = {
    "cleanup.policy": "compact",
    "segment.ms": str(60 * 60 * 1000),
    "max.compaction.lag.ms": str(60 * 60 * 1000),
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": str(_DAY_MS),
}

# The one-time keys of sealed commands (dispatch/sealed_commands.py, docs/PRIVACY.md): made
# by the API before it sends a command, tombstoned by the worker that decides it. As the
# subject keys, a tombstoned key leaves the logs within about two hours of a later append;
# no erased markers (a command's subject is never used again), tombstones kept an hour; and
# deleted, compacted or not, after the commands' retention and a day (the key of a command
# never sent, or never read, goes with it).
_COMMAND_KEYS = {
    "cleanup.policy": "compact,delete",
    "retention.ms": str(8 * _DAY_MS),
    "segment.ms": str(60 * 60 * 1000),
    "max.compaction.lag.ms": str(60 * 60 * 1000),
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": str(60 * 60 * 1000),
}

SPECS: tuple[TopicSpec, ...] = (
    TopicSpec("commands", _delete_after(7 * _DAY_MS)),
    TopicSpec("locations", _delete_after(1 * _DAY_MS)),
    # Messages and acks between shards (partition = receiver), in the senders' batch
    # transactions; a message unacknowledged is sent again, so a week is plenty.
    TopicSpec("shard-messages", _delete_after(7 * _DAY_MS)),
    # The log of record: kept forever.
    TopicSpec("events", {"cleanup.policy": "delete", "retention.ms": "-1"}),
    # Latest snapshot per aggregate (key = aggregate id).
    TopicSpec("snapshots", {"cleanup.policy": "compact"}),
    TopicSpec("outcomes", _delete_after(1 * _DAY_MS)),
    # Shard checkpoints (adapters/kafka/checkpoints.py): compacted, segments rolled often
    # so the cleaner can drop the chunks of old checkpoints.
    TopicSpec("checkpoints", _COMPACT_OFTEN),
    # Each shard's drivers' availability as other shards' matchers see it (key = driver id,
    # partition = the owner shard, written in its batch transactions): compacted, so a
    # worker reads every driver's latest state at start (adapters/kafka/availability.py).
    TopicSpec("driver-availability", _COMPACT_OFTEN),
    TopicSpec("subject-keys", _SUBJECT_KEYS),
    TopicSpec("command-keys", _COMMAND_KEYS),
    TopicSpec("dead-letters", _delete_after(30 * _DAY_MS), partitions=DEAD_LETTER_PARTITIONS),
    # What operators read (dispatch/adapters/kafka/readaudit.py): written by API instances,
    # one partition so the trail keeps the order the brokers took it; kept about 13 months.
    TopicSpec("operator-reads", _delete_after(400 * _DAY_MS), partitions=1),
)
SPECS_BY_ROLE: dict[str, TopicSpec] = {spec.role: spec for spec in SPECS}


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names for one prefix."""

    prefix: str = DEFAULT_PREFIX

    def name(self, role: str) -> str:
        return SPECS_BY_ROLE[role].name(self.prefix)

    @property
    def commands(self) -> str:
        return self.name("commands")

    @property
    def locations(self) -> str:
        return self.name("locations")

    @property
    def shard_messages(self) -> str:
        return self.name("shard-messages")

    @property
    def checkpoints(self) -> str:
        return self.name("checkpoints")

    @property
    def driver_availability(self) -> str:
        return self.name("driver-availability")

    @property
    def subject_keys(self) -> str:
        return self.name("subject-keys")

    @property
    def command_keys(self) -> str:
        return self.name("command-keys")

    @property
    def events(self) -> str:
        return self.name("events")

    @property
    def snapshots(self) -> str:
        return self.name("snapshots")

    @property
    def outcomes(self) -> str:
        return self.name("outcomes")

    @property
    def dead_letters(self) -> str:
        return self.name("dead-letters")

    @property
    def consumed(self) -> tuple[str, ...]:
        """The co-partitioned topics the shard workers consume: partition ``n`` of each is
        shard ``n``'s input, and moves with the shard (one group member has all three)."""
        return (self.commands, self.locations, self.shard_messages)

    def all(self) -> list[str]:
        return [spec.name(self.prefix) for spec in SPECS]


def create_topics(
    bootstrap: Connection,
    prefix: str = DEFAULT_PREFIX,
    partitions: int = 1,
    *,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    raise_replication: bool = False,
    timeout_s: float = 30.0,
    report: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Create the missing topics of ``prefix`` for ``partitions`` shards; return their names.

    Durability comes from the cluster's size (``Durability.for_cluster``: three replicas,
    two in sync, on three brokers or more) unless given. Idempotent: topics that exist are
    strengthened, never weakened (``durability.strengthen``: a lower
    ``min.insync.replicas`` raised, unclean leader election turned off; with
    ``raise_replication``, replicas added), each change told to ``report``. Raises
    ``ValueError`` listing the problems when an existing topic has the wrong shape or
    stays weaker than asked (Kafka cannot shrink partitions or repartition data, so this
    is for an operator to decide).
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    timeout_ms = int(timeout_s * 1000)
    # The controller may take up to ``timeout_ms`` to answer a CreateTopics (a loaded
    # cluster at its start): the request is not given up before (the clients' 5 s).
    admin = new_admin(bootstrap, request_timeout_ms=timeout_ms + ADMIN_MARGIN_MS)
    try:
        want = cluster_durability(admin, replication_factor, min_insync_replicas)
        existing = set(admin.list_topics())
        wanted = {
            spec.name(prefix): {
                "num_partitions": spec.partition_count(partitions),
                "replication_factor": want.replication_factor,
                "configs": {**spec.configs, **want.topic_configs()},
            }
            for spec in SPECS
            if spec.name(prefix) not in existing
        }
        created: list[str] = []
        if wanted:
            result = admin.create_topics(wanted, timeout_ms=timeout_ms, raise_errors=False)
            for topic in result["topics"]:
                code = topic["error_code"]
                if code == 0:
                    created.append(topic["name"])
                elif code != _TOPIC_ALREADY_EXISTS:  # lost a race with another creator: fine
                    raise RuntimeError(f"creating {topic['name']}: {topic['error_message']}")
            admin.wait_for_topics(list(wanted), timeout_ms=timeout_ms)
        older = [spec.name(prefix) for spec in SPECS if spec.name(prefix) in existing]
        strengthen(admin, older, want, raise_replication=raise_replication, report=report)
        problems = _problems(admin, prefix, partitions, want)
        deadline = time.monotonic() + timeout_s
        fresh = tuple(f"{name}:" for name in created)
        while any(p.startswith(fresh) for p in problems) and time.monotonic() < deadline:
            # A broker asked about a topic created a moment ago may not know its configs
            # yet ("cleanup.policy=None" was seen on a three-node cluster): ask again.
            time.sleep(PROPAGATION_WAIT_S)
            problems = _problems(admin, prefix, partitions, want)
    finally:
        admin.close()
    if problems:
        raise ValueError(
            "existing topics have the wrong shape or are weaker than asked: " + "; ".join(problems)
        )
    return created


def check_topics(
    bootstrap: Connection,
    prefix: str = DEFAULT_PREFIX,
    partitions: int | None = None,
    *,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
) -> list[str]:
    """Return the problems of the topics of ``prefix`` (an empty list means all is well).

    Reports missing topics, partition counts other than ``partitions`` (when None, the count
    of the events topic is taken as the shard count), co-partitioned topics whose counts
    differ, wrong ``cleanup.policy`` (and events not kept forever), and anything weaker
    than the durability for the cluster's size or the figures given
    (``durability.durability_problems``: replicas, in-sync replicas, unclean leader
    election, partitions offline or short of in-sync replicas, Kafka's internal topics).
    """
    admin = new_admin(bootstrap)
    try:
        want = cluster_durability(admin, replication_factor, min_insync_replicas)
        return _problems(admin, prefix, partitions, want)
    finally:
        admin.close()


def cluster_durability(
    admin: Any, replication_factor: int | None = None, min_insync_replicas: int | None = None
) -> Durability:
    """The durability the topics should have on the cluster ``admin`` talks to, sized by
    its registered brokers (a broker down, fenced, still counts: while it is down, topics
    are not created weaker, and a check still expects the replicas in sync it should)."""
    return Durability.for_cluster(
        len(registered_brokers(admin)), replication_factor, min_insync_replicas
    )


def delete_topics(bootstrap: Connection, prefix: str, timeout_s: float = 30.0) -> None:
    """Delete the existing topics of ``prefix`` (for tests and throw-away environments)."""
    admin = new_admin(bootstrap, request_timeout_ms=int(timeout_s * 1000) + ADMIN_MARGIN_MS)
    try:
        names = set(Topics(prefix).all()) & set(admin.list_topics())
        if names:
            admin.delete_topics(sorted(names), timeout_ms=int(timeout_s * 1000), raise_errors=False)
    finally:
        admin.close()


def _problems(admin: Any, prefix: str, partitions: int | None, want: Durability) -> list[str]:
    names = [spec.name(prefix) for spec in SPECS]
    described = {t["name"]: t for t in admin.describe_topics(names)}
    counts: dict[str, int] = {}
    problems: list[str] = []
    for name in names:
        info = described.get(name)
        if info is None or info.get("error_code", 0) != 0:
            problems.append(f"{name}: missing")
        else:
            counts[name] = len(info["partitions"])
    if partitions is None:
        partitions = counts.get(SPECS_BY_ROLE["events"].name(prefix))
    co = {
        spec.name(prefix): counts[spec.name(prefix)]
        for spec in SPECS
        if spec.co_partitioned and spec.name(prefix) in counts
    }
    if len(set(co.values())) > 1:
        shape = ", ".join(f"{n}={c}" for n, c in co.items())
        problems.append(f"co-partitioned topics differ in partition count ({shape})")
    if partitions is not None:
        for spec in SPECS:
            name = spec.name(prefix)
            expected = spec.partition_count(partitions)
            have = counts.get(name)
            if have is not None and have != expected:
                problems.append(f"{name}: {have} partitions, expected {expected}")
    present = [n for n in names if n in counts]
    problems.extend(_config_problems(admin, prefix, present))
    problems.extend(durability_problems(admin, present, want))
    return problems


def _config_problems(admin: Any, prefix: str, names: Iterable[str]) -> list[str]:
    names = list(names)
    if not names:
        return []
    keys = list(
        dict.fromkeys(
            [
                "cleanup.policy",
                "retention.ms",
                *SPECS_BY_ROLE["subject-keys"].configs,
                *SPECS_BY_ROLE["command-keys"].configs,
            ]
        )
    )
    found = topic_configs(admin, names, keys, required=["cleanup.policy"])
    problems: list[str] = []
    for spec in SPECS:
        name = spec.name(prefix)
        if name not in names:
            continue
        if name not in found:
            problems.append(f"{name}: {UNREADABLE}")
            continue
        actual = found[name]
        policy = spec.configs["cleanup.policy"]
        if actual.get("cleanup.policy") != policy:
            problems.append(
                f"{name}: cleanup.policy={actual.get('cleanup.policy')}, expected {policy}"
            )
        if spec.role == "events" and actual.get("retention.ms") != "-1":
            problems.append(f"{name}: retention.ms={actual.get('retention.ms')}, expected -1")
        if spec.role in ("subject-keys", "command-keys"):  # they bound how long a key is kept
            problems.extend(
                f"{name}: {key}={actual.get(key)}, expected {value}"
                for key, value in spec.configs.items()
                if actual.get(key) != value
            )
    return problems
