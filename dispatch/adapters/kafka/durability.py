"""How durable the topics are: replicas, in-sync replicas and leader election, chosen from
the cluster's size, checked, and strengthened on topics that exist.

The guarantee the docs claim (docs/RELIABILITY.md): on a cluster of three or more brokers
every topic has three replicas, ``min.insync.replicas=2`` and no unclean leader election,
and every producer writes with ``acks=all`` (``eventstore.clients``). A write the log
acknowledged is then on at least two brokers, one broker may fail with no write refused
and nothing lost, and a replica that fell behind never becomes leader. A smaller cluster
gets what it allows (one broker: one replica; two: two replicas, one in sync required),
and says so: the log then survives no broker loss.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

GUARANTEED_REPLICAS = 3
GUARANTEED_MIN_INSYNC = 2
MIN_INSYNC = "min.insync.replicas"
UNCLEAN = "unclean.leader.election.enable"
# Kafka's own topics that exactly-once depends on: the consumer groups' offsets and the
# transaction coordinator's state. The brokers create them (their replication comes from
# the broker settings); they are checked, not created.
INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")
_NOT_AUTHORIZED = 29  # TOPIC_AUTHORIZATION_FAILED: on a secured cluster, not silently "ok"


@dataclass(frozen=True, slots=True)
class Durability:
    """Replicas per partition and how many must be in sync for a write to be taken."""

    replication_factor: int
    min_insync_replicas: int

    def __post_init__(self) -> None:
        if self.replication_factor < 1:
            raise ValueError(
                f"replication factor must be at least 1, got {self.replication_factor}"
            )
        if not 1 <= self.min_insync_replicas <= self.replication_factor:
            raise ValueError(
                f"min.insync.replicas must be between 1 and the replication factor "
                f"({self.replication_factor}), got {self.min_insync_replicas}: more in-sync "
                "replicas than replicas would refuse every write"
            )

    @classmethod
    def for_cluster(
        cls,
        brokers: int,
        replication_factor: int | None = None,
        min_insync_replicas: int | None = None,
    ) -> Durability:
        """The durability for a cluster of ``brokers``: three replicas with two in sync when
        it has three brokers or more, else a replica on each broker with one in sync (two
        required of two would refuse every write while either broker is down). Either
        figure may be given instead; a replication factor above the broker count is a
        ValueError that says so."""
        if brokers < 1:
            raise ValueError("the cluster has no broker registered")
        replicas = replication_factor or min(GUARANTEED_REPLICAS, brokers)
        if replicas > brokers:
            raise ValueError(
                f"replication factor {replicas} needs {replicas} brokers; the cluster has {brokers}"
            )
        default_insync = GUARANTEED_MIN_INSYNC if replicas >= GUARANTEED_REPLICAS else 1
        return cls(replicas, min_insync_replicas or default_insync)

    @property
    def meets_guarantee(self) -> bool:
        """True when this is at least the guarantee the docs claim (3 replicas, 2 in sync)."""
        return (
            self.replication_factor >= GUARANTEED_REPLICAS
            and self.min_insync_replicas >= GUARANTEED_MIN_INSYNC
        )

    def topic_configs(self) -> dict[str, str]:
        return {MIN_INSYNC: str(self.min_insync_replicas), UNCLEAN: "false"}

    def describe(self) -> str:
        tolerated = self.replication_factor - self.min_insync_replicas
        losses = "no broker loss" if tolerated == 0 else f"{tolerated} broker(s) lost"
        text = (
            f"replication factor {self.replication_factor}, min.insync.replicas "
            f"{self.min_insync_replicas}, no unclean leader election: writes go on with {losses}"
        )
        if not self.meets_guarantee:
            text += (
                f"; weaker than the guarantee the docs claim ({GUARANTEED_REPLICAS} replicas, "
                f"{GUARANTEED_MIN_INSYNC} in sync), which needs {GUARANTEED_REPLICAS} brokers"
            )
        return text


def live_brokers(admin: Any) -> list[int]:
    """The ids of the cluster's brokers that are not fenced, in order."""
    cluster = admin.describe_cluster()
    return sorted(b["broker_id"] for b in cluster["brokers"] if not b.get("is_fenced", False))


def registered_brokers(admin: Any) -> list[int]:
    """The ids of every broker registered with the cluster, fenced ones too, in order: the
    cluster's size. A broker that is down for a while stays registered (fenced), so the
    durability chosen from this does not drop while one is down (a topic created then with
    fewer replicas, or a check that expects fewer in sync, would be weaker for good)."""
    cluster = admin.describe_cluster()
    return sorted(b["broker_id"] for b in cluster["brokers"])


def durability_problems(admin: Any, names: Iterable[str], want: Durability) -> list[str]:
    """What about the topics ``names`` (those that exist) and Kafka's internal topics is
    weaker than ``want``, or keeps writes from being taken right now."""
    names = list(names)
    answered = admin.describe_topics([*names, *INTERNAL_TOPICS])
    described = [t for t in answered if _exists(t)]
    found: list[tuple[str, str]] = [
        (t["name"], "not checked: this principal may not describe it (check as the super user)")
        for t in answered
        if t["name"] in INTERNAL_TOPICS and t.get("error_code") == _NOT_AUTHORIZED
    ]
    for topic in described:
        found.extend(_partition_problems(topic, want))
    replicas = {
        t["name"]: min(len(p["replica_nodes"]) for p in t["partitions"])
        for t in described
        if t["name"] in names
    }
    configs_of = _topic_configs(admin, list(replicas))
    for name in replicas:
        configs = configs_of.get(name)
        if configs is None:
            found.append((name, UNREADABLE))
        else:
            found.extend(_config_problems(name, configs, replicas[name], want))
    return _grouped(found)


def _grouped(found: list[tuple[str, str]]) -> list[str]:
    """One line per problem, naming every topic that has it (the topics of a prefix
    usually share one), in the order first seen."""
    topics: dict[str, list[str]] = {}
    for name, problem in found:
        topics.setdefault(problem, []).append(name)
    return [f"{', '.join(names)}: {problem}" for problem, names in topics.items()]


def strengthen(
    admin: Any,
    names: Iterable[str],
    want: Durability,
    *,
    raise_replication: bool = False,
    timeout_s: float = 60.0,
    report: Callable[[str], None] = lambda _: None,
) -> None:
    """Bring the existing topics ``names`` up to ``want``, never down: with
    ``raise_replication``, first add replicas to partitions that have fewer (the brokers
    copy the data: this waits until the new replicas are in sync, or ``timeout_s``); then
    raise a lower ``min.insync.replicas``, up to the replicas the topic has (more would
    refuse every write), and turn unclean leader election off (metadata only, at once).
    Each change is told to ``report``."""
    names = [t["name"] for t in admin.describe_topics(list(names)) if _exists(t)]
    if raise_replication:  # first: the in-sync replicas are raised only where replicas allow
        _raise_replication(admin, names, want, timeout_s, report)
    replicas = _fewest_replicas(admin, names)
    changes: list[ConfigResource] = []
    for name, configs in _topic_configs(admin, names).items():
        wanted: dict[str, str] = {}
        # Never above the replicas a partition has: that would refuse every write (the
        # replication factor stays a problem that `topics check` reports with its fix).
        insync = min(want.min_insync_replicas, replicas.get(name, want.min_insync_replicas))
        if int(configs.get(MIN_INSYNC, "1")) < insync:
            wanted[MIN_INSYNC] = str(insync)
        if configs.get(UNCLEAN) != "false":
            wanted[UNCLEAN] = "false"
        if wanted:
            changes.append(ConfigResource(ConfigResourceType.TOPIC, name, wanted))
            report(f"{name}: set " + ", ".join(f"{k}={v}" for k, v in wanted.items()))
    if changes:
        admin.alter_configs(changes, incremental=True)
        _wait_for_configs(admin, changes, timeout_s)


def _fewest_replicas(admin: Any, names: list[str]) -> dict[str, int]:
    """The replicas of each topic's partition that has fewest."""
    if not names:
        return {}
    return {
        t["name"]: min(len(p["replica_nodes"]) for p in t["partitions"])
        for t in admin.describe_topics(names)
        if _exists(t)
    }


def _raise_replication(
    admin: Any,
    names: list[str],
    want: Durability,
    timeout_s: float,
    report: Callable[[str], None],
) -> None:
    brokers = live_brokers(admin)
    described = admin.describe_topics(names)
    load = Counter(r for t in described for p in t["partitions"] for r in p["replica_nodes"])
    moves: dict[TopicPartition, list[int]] = {}
    for topic in described:
        for part in topic["partitions"]:
            replicas = list(part["replica_nodes"])
            while len(replicas) < want.replication_factor:
                spare = [b for b in brokers if b not in replicas]
                if not spare:
                    raise ValueError(
                        f"{topic['name']}: {want.replication_factor} replicas need "
                        f"{want.replication_factor} brokers; the cluster has {len(brokers)}"
                    )
                chosen = min(spare, key=lambda b: (load[b], b))
                load[chosen] += 1
                replicas.append(chosen)
            if len(replicas) != len(part["replica_nodes"]):
                moves[TopicPartition(topic["name"], part["partition_index"])] = replicas
    if not moves:
        return
    errors = {tp: e for tp, e in admin.alter_partition_reassignments(moves).items() if e}
    if errors:
        raise RuntimeError(f"adding replicas was refused: {errors}")
    report(f"adding replicas to {len(moves)} partition(s); waiting for them to catch up")
    deadline = time.monotonic() + timeout_s
    while not _in_sync(admin, moves):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the new replicas of {len(moves)} partition(s) were not in sync after "
                f"{timeout_s:.0f}s; the brokers go on copying (`dispatch topics check` shows it)"
            )
        time.sleep(0.5)
    report(f"{len(moves)} partition(s) now have {want.replication_factor} replicas in sync")


def _wait_for_configs(admin: Any, changes: list[ConfigResource], timeout_s: float) -> None:
    """Until the brokers describe the changed configs (a change reaches them through the
    metadata log, so a check right after the change may read the old value)."""
    deadline = time.monotonic() + timeout_s
    wanted = {c.name: dict(c.configs or {}) for c in changes}
    while True:
        found = _topic_configs(admin, list(wanted))
        if all(found.get(n, {}).get(k) == v for n, kv in wanted.items() for k, v in kv.items()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the brokers did not apply {wanted} within {timeout_s:.0f}s")
        time.sleep(0.2)


def _in_sync(admin: Any, moves: Mapping[TopicPartition, list[int]]) -> bool:
    described = admin.describe_topics(sorted({tp.topic for tp in moves}))
    isr = {
        TopicPartition(t["name"], p["partition_index"]): set(p["isr_nodes"])
        for t in described
        for p in t["partitions"]
    }
    return all(set(replicas) <= isr.get(tp, set()) for tp, replicas in moves.items())


def _exists(topic: Mapping[str, Any]) -> bool:
    return topic.get("error_code", 0) == 0 and bool(topic.get("partitions"))


def _partition_problems(topic: Mapping[str, Any], want: Durability) -> list[tuple[str, str]]:
    name = topic["name"]
    parts = topic["partitions"]
    problems: list[tuple[str, str]] = []
    fewest = min(len(p["replica_nodes"]) for p in parts)
    if fewest < want.replication_factor:
        remedy = (
            "raise it with `dispatch topics create --raise-replication`"
            if not topic.get("is_internal")
            else "set offsets.topic.replication.factor / transaction.state.log.replication"
            ".factor on the brokers and add replicas with kafka-reassign-partitions"
        )
        problems.append(
            (name, f"replication factor {fewest}, expected {want.replication_factor} ({remedy})")
        )
    offline = sorted(p["partition_index"] for p in parts if p["leader_id"] < 0)
    if offline:
        problems.append((name, f"partitions {offline} have no leader (offline)"))
    short = sorted(
        p["partition_index"]
        for p in parts
        if p["leader_id"] >= 0 and len(p["isr_nodes"]) < want.min_insync_replicas
    )
    if short and fewest >= want.min_insync_replicas:  # else the replication factor says it
        problems.append(
            (
                name,
                f"partitions {short} have fewer than {want.min_insync_replicas} replicas in "
                "sync: writes to them are refused until a replica catches up",
            )
        )
    return problems


CONFIGS_WAIT_S = 10.0  # how long a check asks again for configs a broker does not know yet
UNREADABLE = "its configs could not be read (the broker asked may not know the topic yet)"


def topic_configs(
    admin: Any,
    names: list[str],
    keys: list[str],
    required: Iterable[str] | None = None,
    wait_s: float | None = None,
) -> dict[str, dict[str, str]]:
    """The configs ``keys`` of each topic of ``names``. A broker that answers just after a
    topic was made may not know it yet (no entry for it, or its entry without the keys):
    asked again until every topic has every key of ``required`` (configs every broker
    gives for a topic it knows; default: all of ``keys``), for ``wait_s`` (``CONFIGS_WAIT_S``) at
    most; a topic still
    without them is left out, so the caller reports it (``UNREADABLE``) rather than
    passing it unchecked or reading a default as its value."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, n, keys) for n in names]
    must = list(keys if required is None else required)
    deadline = time.monotonic() + (CONFIGS_WAIT_S if wait_s is None else wait_s)
    while True:
        found = admin.describe_configs(resources, config_filter="all").get("topic", {})
        configs = {
            name: {key: entry["value"] for key, entry in entries.items()}
            for name, entries in found.items()
            if name in names and all(key in entries for key in must)
        }
        if len(configs) == len(set(names)) or time.monotonic() >= deadline:
            return configs
        time.sleep(0.2)


def _topic_configs(admin: Any, names: list[str]) -> dict[str, dict[str, str]]:
    return topic_configs(admin, names, [MIN_INSYNC, UNCLEAN]) if names else {}


def _config_problems(
    name: str, configs: Mapping[str, str], replicas: int, want: Durability
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    insync = int(configs.get(MIN_INSYNC, "1"))
    if insync < want.min_insync_replicas:
        problems.append(
            (
                name,
                f"{MIN_INSYNC}={insync}, expected {want.min_insync_replicas} "
                "(`dispatch topics create` raises it)",
            )
        )
    if insync > replicas:
        problems.append(
            (
                name,
                f"{MIN_INSYNC}={insync} is more than its {replicas} replica(s): every write "
                "is refused",
            )
        )
    if configs.get(UNCLEAN) != "false":
        problems.append(
            (
                name,
                f"{UNCLEAN}={configs.get(UNCLEAN)}: a replica that fell behind may become "
                "leader and acknowledged writes be lost (`dispatch topics create` turns it off)",
            )
        )
    return problems
