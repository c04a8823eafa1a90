"""The log as a trust boundary (issue #16, fault 6): on a secured three-node cluster
(``kafka-local.sh start --brokers 3 --secure``: SASL_SSL with SCRAM, ACLs enforced), the
admin creates the topics and the ACLs of the one table (``dispatch topics create``,
``dispatch topics acls --apply``); then

- a client with no credentials, or a wrong password, reaches nothing;
- a principal with valid credentials and no grant can neither write a command nor read an
  event;
- a worker's credentials cannot write commands, an API's cannot write events;
- the engine runs with each process as its own role: ``dispatch worker`` as
  ``dispatch-worker``, ``dispatch serve`` as ``dispatch-api``, and ``replay verify`` as
  ``dispatch-operator`` finds the log clean.

One cluster for the module (its start, with the CA and credentials made by keytool, takes
about a minute here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_clients import CONFIRMED, confirmed_rate, registration, run_clients
from api_process import free_port, start_api
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from local_cluster import Cluster, running_cluster

from dispatch.adapters.kafka.config import connection_of, new_admin, new_consumer, new_producer
from dispatch.adapters.kafka.eventstore.connection import Connection, KafkaConnection
from dispatch.adapters.kafka.processes import start_worker, stop_worker, worker_env
from dispatch.adapters.kafka.topics import Topics
from dispatch.settings import Settings

pytestmark = pytest.mark.fault

PREFIX = "secured"
SHARDS = 2
LOAD_S = 12.0
CLIENTS = 6
READY_BOUND_S = 180.0


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("secured") / "cluster", secure=True) as c:
        admin = env_of(c, "admin")
        for args in (
            ["topics", "create", "--partitions", str(SHARDS)],
            ["topics", "acls", "--apply"],
        ):
            out = cli(admin, *args)
            assert out.exit_code == 0, out.output
        yield c


def env_of(cluster: Cluster, user: str) -> dict[str, str]:
    """The DISPATCH_* settings that connect as ``user`` (the cluster's ``<user>.env``)."""
    pairs = (line.split("=", 1) for line in (cluster.secrets / f"{user}.env").read_text().split())
    return {key: value for key, value in pairs} | {"DISPATCH_TOPIC_PREFIX": PREFIX}


def settings_of(cluster: Cluster, user: str, **more: Any) -> Settings:
    env = env_of(cluster, user)
    fields: dict[str, Any] = {k.removeprefix("DISPATCH_").lower(): v for k, v in env.items()}
    return Settings.model_validate(fields | more)


def connection(cluster: Cluster, user: str) -> Connection:
    return connection_of(settings_of(cluster, user))


@dataclass(frozen=True)
class Ran:
    exit_code: int
    output: str


def cli(env: dict[str, str], *args: str) -> Ran:
    """``dispatch ARGS`` in its own process with ``env`` added, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "dispatch", *args],
        env=os.environ | env | {"COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Ran(done.returncode, done.stdout + done.stderr)


def produce_one(conn: Connection, topic: str) -> None:
    producer = new_producer(conn, max_block_ms=15_000, request_timeout_ms=15_000)
    try:
        producer.send(topic, value=b"{}", partition=0).get(timeout=20)
    finally:
        producer.close(timeout=5)


def records_read(conn: Connection, topic: str, polls: int = 10) -> int:
    """How many records of ``topic``'s partitions 0..SHARDS-1 a consumer on ``conn`` gets in
    ``polls`` polls from the beginning (a refusal counts as none)."""
    from kafka import TopicPartition

    consumer = new_consumer(conn, group_id=None, request_timeout_ms=20_000)
    got = 0
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(SHARDS)])
        consumer.seek_to_beginning()
        for _ in range(polls):
            try:
                batches = consumer.poll(timeout_ms=1_000)
            except TopicAuthorizationFailedError:
                return got
            got += sum(len(records) for records in batches.values())
    finally:
        consumer.close()
    return got


def test_the_admin_made_the_topics_and_every_acl_of_the_table_and_check_says_secured(
    secured: Cluster,
) -> None:
    admin = env_of(secured, "admin")
    held = cli(admin, "topics", "acls")
    assert held.exit_code == 0, held.output
    assert "ACL(s) held" in held.output
    check = cli(admin, "topics", "check")
    assert check.exit_code == 0, check.output
    text = " ".join(check.output.split())
    assert "connection: SASL_SSL, TLS checked against" in text
    assert "as admin (SCRAM-SHA-512)" in text
    assert "durability: replication factor 3, min.insync.replicas 2" in text


def test_a_client_without_credentials_or_with_a_wrong_password_reaches_nothing(
    secured: Cluster,
) -> None:
    topics = Topics(PREFIX)
    good = connection(secured, "dispatch-api")
    assert isinstance(good, KafkaConnection)
    plain = good.servers  # no TLS, no SASL: the listener does not speak it
    wrong = KafkaConnection(
        good.servers, "SASL_SSL", "SCRAM-SHA-512", "dispatch-api", "not-the-password",
        good.ssl_cafile,
    )  # fmt: skip
    for conn in (plain, wrong):
        with pytest.raises(KafkaError):
            produce_one(conn, topics.commands)
    assert end_offset(secured, topics.commands) == 0  # nothing got in


def test_workers_cannot_write_commands_and_api_instances_cannot_write_events(
    secured: Cluster,
) -> None:
    topics = Topics(PREFIX)
    with pytest.raises(TopicAuthorizationFailedError):
        produce_one(connection(secured, "dispatch-worker"), topics.commands)
    with pytest.raises(TopicAuthorizationFailedError):
        produce_one(connection(secured, "dispatch-api"), topics.events)
    # The operator may write nowhere, so even its idempotent producer's id is refused.
    with pytest.raises(KafkaError, match="ClusterAuthorizationFailed"):
        produce_one(connection(secured, "dispatch-operator"), topics.commands)
    assert end_offset(secured, topics.commands) == 0
    assert end_offset(secured, topics.events) == 0


def end_offset(cluster: Cluster, topic: str) -> int:
    """How many records ``topic`` holds (its partitions' end offsets), read as the operator."""
    from kafka import TopicPartition

    consumer = new_consumer(connection(cluster, "dispatch-operator"), group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def test_the_engine_runs_with_each_process_as_its_own_role(
    secured: Cluster, tmp_path: Path
) -> None:
    worker_settings = settings_of(secured, "dispatch-worker", shards=SHARDS)
    api_settings = settings_of(
        secured, "dispatch-api", shards=SHARDS, data_dir=tmp_path / "api-data"
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    worker = start_worker(worker_settings, tmp_path / "worker.log", "secured-worker")
    api = start_api(api_settings, port, tmp_path / "api.log")
    stop = threading.Event()
    try:
        wait_until_answering(base_url, api)
        clients, threads = run_clients(base_url, CLIENTS, stop)
        started = time.monotonic()
        time.sleep(LOAD_S)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        writes = [w for c in clients for w in c.writes]
        confirmed = [w for w in writes if w.confirmed]
        assert confirmed, "no write was confirmed on the secured cluster"
        rate = confirmed_rate(writes, started, time.monotonic())
        assert rate > 0
        assert all(w.answers and w.answers[-1] in CONFIRMED for w in confirmed)
    finally:
        stop.set()
        stop_worker(api)
        stop_worker(worker)
    verify = subprocess.run(
        [sys.executable, "-m", "dispatch", "replay", "verify"],
        env=worker_env(settings_of(secured, "dispatch-operator", shards=SHARDS)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert end_offset(secured, Topics(PREFIX).events) > 0


def wait_until_answering(base_url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until a driver registration is confirmed (the API is up and a worker serves)."""
    deadline = time.monotonic() + READY_BOUND_S
    body = {"name": "probe", "home": {"lat": 37.77, "lng": -122.42}}
    probe = registration("register_driver", "/drivers", body)
    answers: list[int] = []
    with httpx.Client(base_url=base_url, timeout=10.0) as http:
        while True:
            assert proc.poll() is None, f"the API exited with {proc.returncode}"
            assert time.monotonic() < deadline, (
                f"the API confirmed no write in time: {answers[-5:]}"
            )
            try:
                r = http.post(probe.path, json=probe.body, headers=probe.headers)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            answers.append(r.status_code)
            if r.status_code in CONFIRMED:
                return
            time.sleep(0.5)


def test_the_load_generator_runs_as_its_own_principal_against_running_workers(
    secured: Cluster, tmp_path: Path
) -> None:
    """``dispatch simulate --workers 0`` as ``dispatch-simulator`` (writes commands and
    pings, reads outcomes and events), on topics and ACLs of its own prefix made by the
    admin, served by a stream-clock worker as ``dispatch-worker``."""
    prefix = "secured-sim"
    admin = env_of(secured, "admin") | {"DISPATCH_TOPIC_PREFIX": prefix}
    for args in (["topics", "create", "--partitions", "1"], ["topics", "acls", "--apply"]):
        out = cli(admin, *args)
        assert out.exit_code == 0, out.output
    worker_settings = settings_of(secured, "dispatch-worker", shards=1, topic_prefix=prefix)
    worker = start_worker(worker_settings, tmp_path / "worker.log", "sim-worker", clock="stream")
    try:
        simulator = settings_of(secured, "dispatch-simulator", shards=1, topic_prefix=prefix)
        run = subprocess.run(
            [sys.executable, "-m", "dispatch", "simulate", "--workers", "0",
             "--drivers", "20", "--minutes", "3", "--seed", "5"],
            env=worker_env(simulator),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )  # fmt: skip
    finally:
        stop_worker(worker)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert end_offset(secured, f"{prefix}.events") > 0


def test_valid_credentials_with_no_grant_neither_write_commands_nor_read_events(
    secured: Cluster,
) -> None:
    """After the engine ran (so events exist): a principal the admin gave a credential and
    no grant reads none of them and writes no command."""
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    admin = new_admin(connection(secured, "admin"))
    try:
        admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion("stranger", ScramMechanism.SCRAM_SHA_512, "pw-stranger")]
        )
    finally:
        admin.close()
    api = connection(secured, "dispatch-api")
    assert isinstance(api, KafkaConnection)
    stranger = KafkaConnection(
        api.servers, "SASL_SSL", "SCRAM-SHA-512", "stranger", "pw-stranger", api.ssl_cafile
    )
    topics = Topics(PREFIX)
    commands_before = end_offset(secured, topics.commands)
    assert records_read(connection(secured, "dispatch-operator"), topics.events, polls=3) > 0
    deadline = time.monotonic() + 30  # the new credential reaches every broker
    while True:
        try:
            produce_one(stranger, topics.commands)
        except KafkaError as e:  # refused as unauthorized: authenticated, then denied
            if "AuthorizationFailed" in repr(e):
                break
            assert time.monotonic() < deadline, f"the stranger never authenticated: {e!r}"
            time.sleep(1)
            continue
        pytest.fail("a principal with no grant wrote a command")
    assert records_read(stranger, topics.events) == 0
    assert end_offset(secured, topics.commands) == commands_before
