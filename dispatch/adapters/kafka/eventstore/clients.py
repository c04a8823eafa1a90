"""Client settings of the event store's Kafka clients, and the naming of its topics.

One place decides the settings that matter for correctness: transactional, idempotent
producers with ``acks=all``; ``read_committed`` consumers; no topic auto-creation (a typo
must not create a one-partition topic that breaks co-partitioning). The rest of the
project's Kafka clients are built from these too; this module imports nothing of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError
from kafka.net.compat import KafkaNetClient
from kafka.net.manager import KafkaConnectionManager

from dispatch.adapters.kafka.eventstore.connection import Connection, connection_config

log = logging.getLogger(__name__)
DEFAULT_PREFIX = "dispatch"


def topic_name(prefix: str, role: str) -> str:
    """Every topic is named ``<prefix>.<role>``."""
    return f"{prefix}.{role}"


DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
# A broker that went away is tried again at most a second apart (kafka-python's backoff
# grows to 30 s, so a client could miss a restarted broker, or a new leader on it, for that
# long).
RECONNECT = {"reconnect_backoff_max_ms": 1_000}
# A request with no answer is given up after 5 s, on every client (kafka-python's default is
# 30 s): a broker that is stalled (its process frozen, fault 2) accepts connections and
# never answers, and each client waited a whole request timeout on it although the cluster
# had fenced it within seconds. No request of these clients is meant to
# wait long at the broker: a fetch waits at most ``fetch_max_wait_ms`` (0.5 s; kafka-python
# refuses a request timeout not above it), an acks=all produce for its replicas
# (milliseconds); a JoinGroup, which the broker holds until the group has rejoined, gets its
# own timeout from kafka-python (``max_poll_interval_ms`` + 5 s). A request given up is
# retried (produce and transaction requests by the producer, fetches at the next poll), on
# another node once the metadata says so.
REQUEST_TIMEOUT_MS = 5_000
# kafka-python's bootstrap picks one of the bootstrap servers at random and, if it accepts
# the connection and never answers, waits the whole ``bootstrap_timeout_ms`` on it without
# trying another: each attempt is given 5 s, and the client is made again (another random
# pick) until ``BOOTSTRAP_TIMEOUT_S`` (``bootstrapped``).
BOOTSTRAP_ATTEMPT_MS = 5_000
BOOTSTRAP_TIMEOUT_S = 30.0  # kafka-python's bootstrap_timeout_ms default, for all attempts
TIMEOUTS = {"request_timeout_ms": REQUEST_TIMEOUT_MS, "bootstrap_timeout_ms": BOOTSTRAP_ATTEMPT_MS}
# A new connection (its TCP connect and first ApiVersions exchange) is given up after 5 s,
# every time: kafka-python 3.0.12 gives it 10 s, growing to 30 s on repeated failures, and
# its clients refuse the setting (``socket_connection_setup_timeout_ms``) as unknown, so the
# default of its connection manager is set (``bound_connection_setup``, at import: for every
# kafka-python client of the process). In a run of fault 2 a worker's check of its group
# opened a connection to the stalled node (still named the group's coordinator) and waited
# 10 s on it, though requests on open connections were given up after 5 s.
CONNECTION_SETUP_TIMEOUT_MS = 5_000
# The broker aborts a transaction left open longer than this (kafka-python's default: 60 s).
# The shard writer keeps one open at most ``writer.FLUSH_SPAN_S`` (7 s) of sends and flushes,
# or 1 s of flush after a batch that decided for longer, then at most three bounded calls
# (offsets, commit, abort: ``COMMIT_TIMEOUT_S``, 5 s each, and a call that overruns gives the
# producer up): 23 s only if all three use their whole bound, about 8 s otherwise. A
# transaction the broker aborts on this timeout is seen by kafka-python as a fence.
TRANSACTION_TIMEOUT_MS = 20_000
# What ``end_offsets`` / ``beginning_offsets`` wait in all when not told: kafka-python's own
# default is the request timeout, which no longer leaves room to ask a second node.
OFFSETS_TIMEOUT_MS = 30_000

_Client = TypeVar("_Client")


def bound_connection_setup() -> None:
    """Give every new connection of kafka-python's clients ``CONNECTION_SETUP_TIMEOUT_MS``."""
    defaults = KafkaConnectionManager.DEFAULT_CONFIG
    keys = ("socket_connection_setup_timeout_ms", "socket_connection_setup_timeout_max_ms")
    missing = [key for key in keys if key not in defaults]
    if missing:  # a kafka-python that renamed them: setting them would change nothing
        raise RuntimeError(f"kafka-python's connection manager has no {missing} setting")
    for key in keys:
        defaults[key] = CONNECTION_SETUP_TIMEOUT_MS


bound_connection_setup()


class ProducerNetClient(KafkaNetClient):  # type: ignore[misc]
    """The network client of every producer (``producer_config``): ``await_ready`` answers
    False for a node it could not get ready, where kafka-python's own raises.

    kafka-python 3.0.12's sender sends a transactional request (AddPartitionsToTxn,
    AddOffsetsToTxn, TxnOffsetCommit, EndTxn) to its coordinator only
    ``if client.await_ready(coordinator)``, and when that answers False it looks the
    coordinator up again and queues the request again (``Sender._maybe_send_pending_request``).
    Its ``KafkaNetClient.await_ready`` raises instead (``KafkaConnectionError: Node ... not
    ready``), and the sender catches that in a branch that looks the coordinator up but leaves
    the request out of the queue, with its target still set: the request is never sent, and
    whatever waits for it never returns (a flush waiting for its partitions to join the
    transaction, ``send_offsets_to_transaction``, a commit or an abort; kafka-python waits for
    the last three with no limit). That happened whenever a shard's transaction or group
    coordinator was on a broker that died: the writer's bounds (``writer.FLUSH_SPAN_S``,
    ``COMMIT_TIMEOUT_S``) then cut the wait, and the shard was reopened with a new producer
    (fault 4: 7 s, then 5 s, then the reopening: the outcomes paused 16.7 s). Answering False,
    the request waits for the coordinator found next, as kafka-python meant.

    Only the "not ready" errors are answered so; any other error (an authentication failure
    kafka-python keeps for the node, an unknown node) is raised as before.
    """

    def await_ready(self, node_id: Any, timeout_ms: int = 30_000) -> bool:
        try:
            return bool(super().await_ready(node_id, timeout_ms=timeout_ms))
        except (KafkaConnectionError, NodeNotReadyError):
            return False


def producer_config(bootstrap: Connection, **overrides: Any) -> dict[str, Any]:
    """Settings of an idempotent (and, with ``transactional_id``, transactional) producer.

    ``acks=all`` and idempotence cannot be overridden (a ValueError): with them a write is
    acknowledged only once ``min.insync.replicas`` replicas have it, and a retried send is
    written once, which is what the topics' durability (``kafka.durability``) rests on.
    """
    weakened = {
        key: overrides[key]
        for key, safe in (("acks", ("all", -1)), ("enable_idempotence", (True,)))
        if key in overrides and overrides[key] not in safe
    }
    if weakened:
        raise ValueError(
            f"producers write with acks=all and idempotence; refusing {weakened}: a write "
            "acknowledged by fewer replicas, or written twice on a retry, may be lost or doubled"
        )
    config: dict[str, Any] = {
        **connection_config(bootstrap),
        **RECONNECT,
        **TIMEOUTS,
        "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS,  # used only with transactional_id
        # Leaders looked up at least every 5 s: a producer whose partition's leader died
        # held its records for the dead node for 30 s in a CI run of fault 1 (kafka-python's
        # default is 5 minutes between lookups), though the leadership had moved in 3 s.
        "metadata_max_age_ms": 5_000,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 0,
        "max_block_ms": 30_000,
        "allow_auto_create_topics": False,
        # A transactional request whose coordinator is not ready is queued again, not
        # dropped (``ProducerNetClient``).
        "kafka_client": ProducerNetClient,
    }
    config.update(overrides)
    return config


def consumer_config(bootstrap: Connection, **overrides: Any) -> dict[str, Any]:
    """Settings of a ``read_committed`` consumer that commits nothing unless told to."""
    config: dict[str, Any] = {
        **connection_config(bootstrap),
        **RECONNECT,
        **TIMEOUTS,
        # Leaders looked up at least every 5 s, as the producers do: in a run of fault 2 a
        # worker's consumer, its shard's partitions paused meanwhile, fetched from the stalled
        # node 4 s after the leaderships had moved and waited its request timeout on it.
        "metadata_max_age_ms": 5_000,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "allow_auto_create_topics": False,
        "max_poll_records": 10_000,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
    }
    config.update(overrides)
    return config


def new_producer(bootstrap: Connection, **overrides: Any) -> KafkaProducer:
    return bootstrapped(lambda c: KafkaProducer(**c), producer_config(bootstrap, **overrides))


def new_consumer(bootstrap: Connection, **overrides: Any) -> KafkaConsumer:
    return bootstrapped(lambda c: KafkaConsumer(**c), consumer_config(bootstrap, **overrides))


def bootstrapped(
    make: Callable[[dict[str, Any]], _Client],
    config: dict[str, Any],
    total_s: float = BOOTSTRAP_TIMEOUT_S,
) -> _Client:
    """``make(config)``, made again while its bootstrap times out, until ``total_s``.

    kafka-python's constructors bootstrap: they pick one bootstrap server at random and
    wait on it up to ``bootstrap_timeout_ms``, never trying another, so a server that
    accepts connections but does not answer (a stalled broker) held each new client for the
    whole timeout. Each attempt here has the config's (short) bootstrap timeout; the next
    one picks at random again. A failed attempt's network client (its IO thread and
    sockets: consumers and admin clients start the thread before they bootstrap, and the
    half-made client cannot be closed) is closed through the ``kafka_client`` factory that
    records it.
    """
    deadline = time.monotonic() + total_s
    attempt = 1
    base = config.get("kafka_client", KafkaNetClient)
    while True:
        made: list[Any] = []

        def recorded(*args: Any, _made: list[Any] = made, **kwargs: Any) -> Any:
            client = base(*args, **kwargs)
            _made.append(client)
            return client

        try:
            return make({**config, "kafka_client": recorded})
        except KafkaTimeoutError as e:
            for client in made:
                _close_quietly(client)
            if time.monotonic() >= deadline:
                raise
            log.info(
                "bootstrap attempt %d to %s timed out (%s); trying again",
                attempt,
                config.get("bootstrap_servers"),
                e,
            )
            attempt += 1


def _close_quietly(client: Any) -> None:
    """Close a failed attempt's network client; a failure to close is logged, not raised."""
    try:
        client.close()
    except Exception as error:  # a half-made client: nothing else to do with it
        log.info("closing a failed bootstrap attempt's client: %s", error)


def position(
    consumer: KafkaConsumer, tp: TopicPartition, timeout_ms: int = OFFSETS_TIMEOUT_MS
) -> int:
    """``consumer.position(tp)`` within ``timeout_ms``: kafka-python bounds a lookup given
    no timeout by the request timeout (5 s), all of which a request to a stalled leader
    uses up, and then answers ``None`` rather than raise. A ``KafkaTimeoutError`` then."""
    found = consumer.position(tp, timeout_ms=timeout_ms)
    if found is None:
        raise KafkaTimeoutError(f"the position of {tp} was not known within {timeout_ms} ms")
    return int(found)


OFFSET_ATTEMPTS = 3


def end_offsets(
    consumer: KafkaConsumer, tps: list[TopicPartition], timeout_ms: int | None = None
) -> dict[TopicPartition, int]:
    """``consumer.end_offsets``, asked again when kafka-python 3.0 drops a partition from
    its answer (a ``KeyError`` from inside the call, seen about once in ten runs of the
    benchmark scripts on a loaded broker). ``timeout_ms`` defaults to
    ``OFFSETS_TIMEOUT_MS``."""
    return _offsets(consumer.end_offsets, tps, timeout_ms)


def beginning_offsets(
    consumer: KafkaConsumer, tps: list[TopicPartition], timeout_ms: int | None = None
) -> dict[TopicPartition, int]:
    """``consumer.beginning_offsets``, asked again as ``end_offsets`` is."""
    return _offsets(consumer.beginning_offsets, tps, timeout_ms)


def _offsets(
    ask: Any, tps: list[TopicPartition], timeout_ms: int | None
) -> dict[TopicPartition, int]:
    for attempt in range(OFFSET_ATTEMPTS):
        try:
            found: dict[TopicPartition, int] = ask(tps, timeout_ms=timeout_ms or OFFSETS_TIMEOUT_MS)
            return found
        except KeyError:
            if attempt + 1 == OFFSET_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
