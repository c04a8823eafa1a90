"""Who may do what on the log: one table of roles and topics, and the Kafka ACLs made from it.

Each process connects as the principal of its role (``User:<name>``, a SASL/SCRAM user):

- ``api``: writes commands, the one-time keys they are sealed with (command keys, written
  not read: docs/PRIVACY.md), pings and the records of operators' reads; reads outcomes (its
  answers), events (its views), pings (its location views) and the subject keys (to open the
  personal fields it shows). It cannot write events, outcomes, subject keys or anything a
  shard owns.
- ``worker``: reads its inputs (commands, pings, messages from other shards) and the shard
  state it restores (events, snapshots, checkpoints, driver availability); writes, in its
  batch transactions (transactional ids ``<prefix>.shard-*``), events, outcomes, snapshots,
  checkpoints, messages to other shards, driver availability and dead letters; reads and
  writes the subject keys (the key store, docs/PRIVACY.md) and the command keys (reads them
  to open a command, tombstones them once it is decided); joins the workers' group. It
  cannot write commands.
- ``simulator``: the load generator; writes commands and pings, reads outcomes and events
  (it learns from committed events, as an app would).
- ``operator``: reads every topic (replay, audits) and describes their configs
  (``dispatch topics check``); writes nothing.

Creating topics and ACLs is the brokers' super user's (the cluster's admin), not a role.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import SecurityDisabledError

from dispatch.adapters.kafka.durability import INTERNAL_TOPICS
from dispatch.adapters.kafka.topics import SPECS, Topics

ROLES = ("api", "worker", "simulator", "operator")
DEFAULT_PRINCIPALS: dict[str, str] = {role: f"dispatch-{role}" for role in ROLES}

# role -> (topics it reads, topics it writes), by topic role (``topics.SPECS``).
TABLE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "api": (
        ("outcomes", "events", "locations", "subject-keys"),
        ("commands", "command-keys", "locations", "operator-reads"),
    ),
    "worker": (
        (
            "commands",
            "locations",
            "shard-messages",
            "events",
            "snapshots",
            "checkpoints",
            "driver-availability",
            "subject-keys",
            "command-keys",
        ),
        (
            "events",
            "outcomes",
            "snapshots",
            "checkpoints",
            "shard-messages",
            "driver-availability",
            "subject-keys",
            "command-keys",
            "dead-letters",
        ),
    ),
    "simulator": (("outcomes", "events"), ("commands", "locations")),
    "operator": (tuple(spec.role for spec in SPECS), ()),
}


@dataclass(frozen=True, slots=True)
class Grant:
    """One allowed operation of one principal on one resource (readable in a table)."""

    role: str
    principal: str
    operation: str
    resource_type: str
    resource: str
    prefixed: bool = False

    def acl(self) -> ACL:
        pattern = (
            ACLResourcePatternType.PREFIXED if self.prefixed else ACLResourcePatternType.LITERAL
        )
        return ACL(
            principal=f"User:{self.principal}",
            host="*",
            operation=ACLOperation[self.operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[self.resource_type], self.resource, pattern
            ),
        )


def grants(prefix: str, principals: Mapping[str, str] | None = None) -> list[Grant]:
    """Every grant of the table for the topics of ``prefix``; ``principals`` names the
    user of each role (default ``dispatch-<role>``)."""
    names = {**DEFAULT_PRINCIPALS, **(principals or {})}
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}: the roles are {', '.join(ROLES)}")
    topics = Topics(prefix)
    found: list[Grant] = []
    for role in ROLES:
        user = names[role]
        reads, writes = TABLE[role]
        for topic in reads:
            found.append(Grant(role, user, "READ", "TOPIC", topics.name(topic)))
        for topic in writes:
            found.append(Grant(role, user, "WRITE", "TOPIC", topics.name(topic)))
        for topic in dict.fromkeys((*reads, *writes)):
            found.append(Grant(role, user, "DESCRIBE", "TOPIC", topics.name(topic)))
    worker = names["worker"]
    found += [
        Grant("worker", worker, "READ", "GROUP", f"{prefix}.workers"),
        Grant("worker", worker, "WRITE", "TRANSACTIONAL_ID", f"{prefix}.shard-", prefixed=True),
        Grant("worker", worker, "DESCRIBE", "TRANSACTIONAL_ID", f"{prefix}.shard-", prefixed=True),
        Grant("worker", worker, "DESCRIBE", "GROUP", f"{prefix}.workers"),
    ]
    operator = names["operator"]
    found += [
        # Kafka's own topics exactly-once rests on, for `dispatch topics check`.
        *(Grant("operator", operator, "DESCRIBE", "TOPIC", t) for t in INTERNAL_TOPICS),
        Grant("operator", operator, "DESCRIBE_CONFIGS", "TOPIC", f"{prefix}.", prefixed=True),
        Grant("operator", operator, "DESCRIBE", "CLUSTER", "kafka-cluster"),
        Grant("operator", operator, "DESCRIBE", "GROUP", f"{prefix}.workers"),
    ]
    return found


def _key(acl: ACL) -> tuple[str, str, int, int, int, str, int]:
    pattern = acl.resource_pattern
    return (
        acl.principal,
        acl.host,
        int(acl.operation),
        int(acl.permission_type),
        int(pattern.resource_type),
        pattern.resource_name,
        int(pattern.pattern_type),
    )


def existing_acls(admin: Any) -> set[tuple[str, str, int, int, int, str, int]]:
    """Every ACL the brokers hold (a RuntimeError saying so when they run no authorizer)."""
    everything = ACLFilter(
        principal=None,
        host="*",
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    try:
        found, error = admin.describe_acls(everything)
    except SecurityDisabledError as disabled:
        raise RuntimeError(
            "the brokers run no authorizer, so they hold no ACLs and anyone may do anything "
            "(the open single-broker default): ACLs need a secured cluster"
        ) from disabled
    code = getattr(error, "errno", None)
    if code:
        raise RuntimeError(f"describing the ACLs failed: {error}")
    return {_key(acl) for acl in found}


def missing_grants(admin: Any, wanted: list[Grant]) -> list[Grant]:
    """The grants of ``wanted`` the brokers do not hold."""
    held = existing_acls(admin)
    return [grant for grant in wanted if _key(grant.acl()) not in held]


def apply_grants(admin: Any, wanted: list[Grant]) -> list[Grant]:
    """Create the ACLs of the grants the brokers do not hold yet; return those created
    (an ACL the brokers refuse is a RuntimeError naming it and why)."""
    missing = missing_grants(admin, wanted)
    if not missing:
        return []
    result = admin.create_acls([grant.acl() for grant in missing])
    failed = result.get("failed", [])
    if failed:
        reasons = "; ".join(f"{acl}: {error}" for acl, error in failed)
        raise RuntimeError(f"the brokers refused {len(failed)} ACL(s): {reasons}")
    return missing
