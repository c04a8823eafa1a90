"""Fault 5 (issue #16): an API process is killed with SIGKILL while writes are outstanding.

On a fresh three-node cluster (``local_cluster``), topics with three replicas; ``WORKERS``
``dispatch worker`` processes and one ``dispatch serve`` process (127.0.0.1, its own port).
``CLIENTS`` clients (tests/faults/api_clients.py) send keyed writes through the API, each
always with one in flight: registrations, going online and offline, ride requests.
``LOAD_BEFORE_S`` in, the API process is killed by its pid (SIGKILL). There are more
clients than the process has threads for writes (anyio's 40), so at the kill some
outstanding writes have been sent to the commands topic and some wait in the process, never
sent: both must come out right. A new process is started at once on the same port and data
dir. Every write that had no 200/201 is sent again with its key
and body; then the clients run ``LOAD_AFTER_S`` more against the new process.

From the log, read apart from the API (tests/faults/log_tally.py, read_committed), once the
workers have consumed every command sent: before the retries, every confirmed write is in
the log exactly once, and no command is there twice; each retry is answered 200/201, and
says it was replayed exactly when its write was in the log already; after the retries,
every write is there exactly once, its effect too; ``dispatch replay verify`` is clean.

Recorded and logged (``-rA`` shows it): writes confirmed per second before the kill and
after the restart, and the recovery time, from the SIGKILL to the new process's first
confirmed write. Only a generous bound on recovery is asserted. Every write, with its
answers, its retry's and whether it was in the log at the restart, is kept in the test's
``writes.jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_clients import CONFIRMED, Client, Write, confirmed_rate, registration, retry, run_clients
from api_process import free_port, start_api
from log_tally import LogTally, commands_consumed, read_log, replay_verify

from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.topics import create_topics, delete_topics
from dispatch.settings import Settings

pytestmark = pytest.mark.fault
log = logging.getLogger(__name__)

SHARDS = 4
WORKERS = 2
CLIENTS = 48  # more than the API's 40 threads for sync endpoints: some writes queue there
LOAD_BEFORE_S = 20.0  # of writes before the kill
LOAD_AFTER_S = 15.0  # of writes on the new process, after the retries
READY_BOUND_S = 180.0  # a fresh deployment answers its first write within this
RECOVERY_BOUND_S = 120.0  # asserted: the new process confirmed a write within this


@pytest.fixture
def cluster_bootstrap(local_cluster: Any) -> str:
    """The bootstrap list of a fresh three-node cluster (``tests/local_cluster.py``)."""
    bootstrap: str = local_cluster.bootstrap
    return bootstrap


@pytest.fixture
def deployment(cluster_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    prefix = f"fault-api-{uuid.uuid4().hex[:8]}"
    create_topics(cluster_bootstrap, prefix, SHARDS, replication_factor=3)
    try:
        yield Settings(
            kafka_bootstrap=cluster_bootstrap,
            topic_prefix=prefix,
            shards=SHARDS,
            data_dir=tmp_path / "api-data",
        )
    finally:
        delete_topics(cluster_bootstrap, prefix)


def stop_api(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the API's own pid, SIGKILL it if it has not stopped in 30 s."""
    stop_worker(proc)


def first_write(base_url: str, proc: subprocess.Popen[bytes], bound_s: float) -> Write:
    """A driver registration sent until it is confirmed (the process is up and a worker
    serves its shard): the first write a new process answers."""
    write = registration(
        "register_driver", "/drivers", {"name": "probe", "home": {"lat": 37.77, "lng": -122.42}}
    )
    deadline = time.monotonic() + bound_s
    with httpx.Client(base_url=base_url, timeout=10.0) as http:
        while not write.confirmed:
            assert proc.poll() is None, f"the API process exited with {proc.returncode}"
            assert time.monotonic() < deadline, (
                f"no write confirmed in {bound_s} s: {write.answers}"
            )
            try:
                r = http.post(write.path, json=write.body, headers=write.headers)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            write.answers.append(r.status_code)
            if r.status_code in CONFIRMED:
                write.confirmed_at = time.monotonic()
    return write


def all_writes(clients: list[Client]) -> list[Write]:
    return [w for c in clients for w in c.writes]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def test_an_api_killed_with_writes_outstanding_loses_no_confirmed_write_and_doubles_none(
    deployment: Settings, tmp_path: Path
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    api_log = tmp_path / "api.log"
    workers = [start_worker(deployment, tmp_path / f"w{i}.log", f"w{i}") for i in range(WORKERS)]
    api = start_api(deployment, port, api_log)
    stop_load = threading.Event()
    try:
        probes = [first_write(base_url, api, READY_BOUND_S)]
        before, threads = run_clients(base_url, CLIENTS, stop_load)
        started = time.monotonic()
        time.sleep(LOAD_BEFORE_S)
        stop_load.set()  # no new write: those in flight now are outstanding
        killed = time.monotonic()
        os.kill(api.pid, signal.SIGKILL)
        api.wait(timeout=30)
        api = start_api(deployment, port, api_log)
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a client hangs on the dead process"
        probes.append(first_write(base_url, api, RECOVERY_BOUND_S))
        recovered = probes[-1].confirmed_at
        assert recovered is not None

        commands_consumed(deployment)
        at_restart = read_log(deployment)
        unconfirmed = [w for w in all_writes(before) if not w.confirmed]
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            for write in unconfirmed:
                retry(http, write, deadline)

        resumed = time.monotonic()
        stop_after = threading.Event()
        after, threads = run_clients(base_url, CLIENTS, stop_after)
        time.sleep(LOAD_AFTER_S)
        stop_after.set()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a client hangs on the new process"
        ended = time.monotonic()
        commands_consumed(deployment)
    finally:
        stop_load.set()
        if "stop_after" in locals():
            stop_after.set()
        stop_api(api)
        for worker in workers:
            stop_worker(worker)

    final = read_log(deployment)
    verified = replay_verify(deployment)
    writes_before, writes_after = all_writes(before), all_writes(after)
    dropped = [w for w in writes_before if w.answers and w.answers[-1] is None]
    rates = (
        confirmed_rate(writes_before, started, killed),
        confirmed_rate(writes_after, resumed, ended),
    )
    in_log = sum(1 for w in unconfirmed if w.command_id in at_restart.records)
    ledger(tmp_path / "writes.jsonl", writes_before + probes + writes_after, at_restart)
    log.info(
        "fault 5, API killed: %d clients, %d shards, %d workers, cpu %s x%s; before the kill "
        "%.1f writes/s confirmed (%d writes, %d without a final answer at the kill: %d "
        "dropped, %d answered 202; %d of them in the log already); recovery %.2f s (kill "
        "to the new process's first confirmed write); after %.1f writes/s confirmed (%d writes)",
        CLIENTS, SHARDS, WORKERS,
        cpu_model(), os.cpu_count(), rates[0], len(writes_before), len(unconfirmed),
        len(dropped), len(unconfirmed) - len(dropped), in_log,
        recovered - killed, rates[1], len(writes_after),
    )  # fmt: skip

    # Writes were outstanding when the process died, some already in the log and some not;
    # none was refused before.
    assert dropped, "no write was outstanding at the kill"
    assert 0 < in_log < len(unconfirmed), "the kill did not find writes both sent and not"
    # A 202 ("pending") promises the write is in the log: every such write is, before any
    # retry (the API answers 503 instead when the log has not acknowledged it).
    pending_missing = [
        w.command_id
        for w in unconfirmed
        if 202 in w.answers and w.command_id not in at_restart.records
    ]
    assert pending_missing == [], f"writes answered 202 but not in the log: {pending_missing}"
    assert {a for w in writes_before for a in w.answers} <= {200, 201, 202, None}

    # Before any retry: every confirmed write is in the log once; nothing is there twice.
    assert at_restart.doubled() == {}
    assert not_once(at_restart, [w for w in writes_before + probes[:1] if w.confirmed]) == {}

    # Each retry is confirmed, and says whether its write was in the log before it.
    assert {w.command_id: w.retry_answers for w in unconfirmed if not w.retried} == {}
    assert {
        w.command_id: (w.replayed, w.command_id in at_restart.records)
        for w in unconfirmed
        if w.replayed != (w.command_id in at_restart.records)
    } == {}

    # After the retries: every write is in the log exactly once, accepted, with its effect.
    assert {a for w in writes_after for a in w.answers} <= {200, 201, 202}
    everything = writes_before + writes_after + probes
    assert final.doubled() == {}
    assert not_once(final, everything) == {}
    assert [
        w.command_id for w in everything if not final.records[w.command_id][0]["accepted"]
    ] == []
    assert effects(final) == Counter(w.kind for w in everything)
    assert max(final.of_type("dispatch.Driver.Registered").values()) == 1
    assert max(final.of_type("dispatch.Ride.Requested").values()) == 1

    assert verified.returncode == 0 and "0 violation(s)" in " ".join(verified.stdout.split()), (
        verified.stdout + verified.stderr
    )
    assert recovered - killed < RECOVERY_BOUND_S
    assert rates[0] > 0 and rates[1] > 0


def not_once(tally: LogTally, writes: list[Write]) -> dict[str, int]:
    """The writes whose command is not recorded exactly once: command id -> records."""
    counts = {w.command_id: len(tally.records.get(w.command_id, [])) for w in writes}
    return {cid: n for cid, n in counts.items() if n != 1}


EFFECTS = {
    "dispatch.Driver.Registered": "register_driver",
    "dispatch.Rider.Registered": "register_rider",
    "dispatch.Ride.Requested": "request_ride",
    "dispatch.Driver.WentOnline": "go_online",
    "dispatch.Driver.WentOffline": "go_offline",
}


def effects(tally: LogTally) -> Counter[str]:
    """The events the clients' writes cause, counted by the command that causes each."""
    return Counter({kind: tally.of_type(event).total() for event, kind in EFFECTS.items()})


def ledger(path: Path, writes: list[Write], at_restart: LogTally) -> None:
    """Every write, one JSON line each: key, command id, answers before the kill (null: no
    answer), whether it was in the log at the restart, the retry's answers and header."""
    with path.open("w") as out:
        for w in writes:
            row = {
                "kind": w.kind,
                "key": w.key,
                "command_id": w.command_id,
                "answers": w.answers,
                "in_log_at_restart": w.command_id in at_restart.records,
                "retry_answers": w.retry_answers,
                "replayed": w.replayed,
            }
            out.write(json.dumps(row) + "\n")
