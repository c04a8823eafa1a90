"""Erasure end to end on the real broker (docs/PRIVACY.md): a rider and a driver register
over HTTP with `dispatch worker` processes behind the API, the rider's ride opens at
another shard than the rider's home (an ``OpenRide`` on shard-messages), waits there while
a second worker process takes the shards over (restored from a checkpoint whose matcher
rows are sealed), is driven and completed; both are erased. Then every topic is read back
with a plain consumer (read_uncommitted: aborted records too) and searched for their names
and the ride's coordinates, as text and as binary doubles: none in the events, snapshots,
checkpoints, shard-messages, outcomes, availability, keys or commands topics (a command's
personal fields are sealed under a one-time key, tombstoned once it is decided: docs/PRIVACY.md,
"Sealed commands"), nor in the views kept under the data dir or the processes' logs. The
locations topic does hold the driver's positions, in the clear, until its retention
deletes them ("Deadlines"): the test says so by finding them there."""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition
from pydantic import SecretStr
from test_erasure_embedded import (
    DRIVER,
    DROPOFF,
    FARES,
    MARKETS,
    NEAR_PICKUP,
    NORTH,
    PICKUP,
    RIDER,
    SECRET,
    _needles,
    bearer,
)
from typer.testing import CliRunner

from dispatch.adapters.kafka.keystore import ERASED_PREFIX
from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.topics import Topics
from dispatch.api import AuthSettings, create_app, mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.cli import app as cli
from dispatch.domain.ids import shard_of
from dispatch.settings import Settings

pytestmark = pytest.mark.kafka
WAIT_S = 30.0
# Every topic but these must hold no name and no coordinate once the subjects are erased.
# The locations topic: the driver's pings (their pinged position is a needle) until its
# retention, 1 day (docs/PRIVACY.md, "Deadlines").
# The dead-letters topic is scanned too: the test sends no malformed command, so whatever
# is dead-lettered (a shard-messages record) must hold only sealed values.
CLEAR_UNTIL_RETENTION = ("locations",)


@pytest.fixture
def settings(kafka_topics: Any, tmp_path: Path) -> Settings:
    assert kafka_topics.partitions == 2, "one shard a market"
    return Settings(
        data_dir=tmp_path / "data",
        kafka_bootstrap=kafka_topics.bootstrap,
        topic_prefix=kafka_topics.prefix,
        shards=2,
        markets=MARKETS,
        fares=FARES,
        offer_timeout_s=60.0,
        ended_ride_retention_s=0.0,
        checkpoint_every_events=1,  # a checkpoint (matcher rows, live aggregates) each batch
    )


@contextmanager
def worker(settings: Settings, log: Path, member: str) -> Iterator[None]:
    proc = start_worker(settings, log, member)
    try:
        yield
    finally:
        stop_worker(proc)


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    options = ApiOptions(heartbeat_s=0.2, read_wait_s=1.0, command_timeout_s=10.0)
    with TestClient(create_app(runtime, auth, options)) as c:
        yield c, bearer(mint_operator_token(auth, "ops", "admin"))


def _until(check: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not in {WAIT_S} s"
        time.sleep(0.05)
    return found


def _decided(c: TestClient, method: str, url: str, **kwargs: Any) -> Any:
    """A command sent with a key, retried while it is answered 202 (a worker still taking
    its shards over)."""
    key = {"Idempotency-Key": str(uuid.uuid4())}
    headers = {**kwargs.pop("headers", {}), **key}
    deadline = time.monotonic() + WAIT_S
    while (r := c.request(method, url, headers=headers, **kwargs)).status_code == 202:
        assert time.monotonic() < deadline, f"{method} {url}: still 202 after {WAIT_S} s"
    return r


def _register(c: TestClient) -> tuple[str, dict[str, str], str, dict[str, str]]:
    r = _decided(c, "POST", "/riders", json={"name": RIDER, "home": NORTH})
    assert r.status_code == 201, r.text
    rider_id, rider = r.json()["rider_id"], bearer(r.json()["token"]["access_token"])
    r = _decided(c, "POST", "/drivers", json={"name": DRIVER, "home": PICKUP})
    assert r.status_code == 201, r.text
    driver_id, driver = r.json()["driver_id"], bearer(r.json()["token"]["access_token"])
    return rider_id, rider, driver_id, driver


def _request(c: TestClient, rider: dict[str, str], rider_id: str) -> str:
    r = _decided(c, "POST", "/rides", headers=rider, json={"pickup": PICKUP, "dropoff": DROPOFF})
    assert r.status_code == 201, r.text
    ride_id: str = r.json()["ride_id"]
    assert shard_of(UUID(ride_id)) != shard_of(UUID(rider_id)), "opened by an OpenRide"
    seen = c.get(f"/rides/{ride_id}", headers=rider).json()
    assert seen["pickup"] == PICKUP  # the API opens what the worker sealed
    return ride_id


def _drive(c: TestClient, ride_id: str, driver_id: str, driver: dict[str, str]) -> None:
    r = _decided(c, "POST", f"/drivers/{driver_id}/online", headers=driver)
    assert r.status_code == 200, r.text
    assert c.post(f"/drivers/{driver_id}/location", headers=driver, json=NEAR_PICKUP).is_success
    _until(
        lambda: c.get(f"/rides/{ride_id}", headers=driver).json().get("offered_to") == driver_id,
        "the ride offered to the driver",
    )
    for action in ("accept", "arrived", "start", "complete"):
        r = _decided(c, "POST", f"/rides/{ride_id}/{action}", headers=driver)
        assert r.status_code == 200, (action, r.text)
    r = _decided(c, "POST", f"/drivers/{driver_id}/offline", headers=driver, json={})
    assert r.status_code == 200, r.text


def _erase(c: TestClient, admin: dict[str, str], ids: tuple[str, str], ride_id: str) -> None:
    rider_id, driver_id = ids
    r = c.delete(f"/riders/{rider_id}", headers=admin)
    assert r.status_code == 200, r.text
    assert c.delete(f"/riders/{rider_id}", headers=admin).status_code == 200  # idempotent
    r = c.delete(f"/drivers/{driver_id}", headers=admin)
    assert r.status_code == 200, r.text
    after = _until(
        lambda: (v := c.get(f"/rides/{ride_id}", headers=admin).json())["pickup"] is None and v,
        "the ride read with its pickup erased",
    )
    assert after["dropoff"] is None and after["status"] == "completed"
    assert after["timeline"][0]["data"]["pickup"] == "erased"


def _read_topics(
    settings: Settings, isolation: str = "read_uncommitted", only: str | None = None
) -> dict[str, list[Any]]:
    """Every record of every topic of the prefix (or of the role ``only``), by role;
    aborted ones included unless ``isolation`` is read_committed."""
    assert settings.kafka_bootstrap is not None
    topics = Topics(settings.topic_prefix)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
    )
    found: dict[str, list[Any]] = defaultdict(list)
    try:
        for name in topics.all():
            if only is not None and name != f"{settings.topic_prefix}.{only}":
                continue
            tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name))]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            role = name[len(settings.topic_prefix) + 1 :]
            deadline = time.monotonic() + WAIT_S
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                assert time.monotonic() < deadline, f"{name} not read to its end"
                for records in consumer.poll(timeout_ms=500).values():
                    found[role].extend(records)
    finally:
        consumer.close()
    return found


def _hits(records: list[Any]) -> list[str]:
    hits = []
    for record in records:
        data = (record.key or b"") + b"\x00" + (record.value or b"")
        for header in record.headers or ():
            data += b"\x00" + (header[1] or b"")
        hits += [f"@{record.partition}:{record.offset} {n!r}" for n in _needles() if n in data]
    return hits


def _replay(settings: Settings, *args: str) -> str:
    assert settings.kafka_bootstrap is not None
    result = CliRunner().invoke(cli, ["replay", *args, "--kafka", settings.kafka_bootstrap])
    assert result.exit_code == 0, result.output
    return result.output


def test_an_erased_rider_and_driver_leave_no_name_or_coordinate_in_the_topics(
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The engine's own loggers at DEBUG; kafka-python's at INFO: at DEBUG it logs every
    # request's bytes, the commands' plaintext included (docs/PRIVACY.md, "Where each field
    # flows": logs).
    caplog.set_level(logging.INFO)
    for name in ("dispatch", "projections"):
        caplog.set_level(logging.DEBUG, logger=name)
    first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
    with serving(settings) as (c, admin):
        with worker(settings, first_log, "first"):
            rider_id, rider, driver_id, driver = _register(c)
            ride_id = _request(c, rider, rider_id)  # no driver online: it waits
            time.sleep(2.0)  # the batches after it write the checkpoint that holds it
        with worker(settings, second_log, "second"):  # restored from sealed checkpoints
            _drive(c, ride_id, driver_id, driver)
            _erase(c, admin, (rider_id, driver_id), ride_id)
            # the erasing batches revoked their tokens: this instance refuses them from the
            # erasure's answer on
            for refused in (
                c.post("/rides", headers=rider, json={"pickup": PICKUP, "dropoff": DROPOFF}),
                c.post(f"/drivers/{driver_id}/online", headers=driver),
            ):
                assert refused.status_code == 401, refused.text
                assert "token revoked" in refused.text, refused.text

    # The second worker took the ride's shard over from a checkpoint holding the waiting
    # ride's sealed row, and opened it (an unopened row makes the checkpoint unusable).
    second = second_log.read_text()
    ride_shard = shard_of(UUID(ride_id))
    assert f"shard {ride_shard}: checkpoint chosen in" in second
    chosen = [line for line in second.splitlines() if f"shard {ride_shard}: checkpoint" in line]
    assert any("(at " in line for line in chosen), chosen
    assert "unusable" not in second and "Traceback" not in second

    topics = _read_topics(settings)
    # the scanned topics hold what would have leaked
    events = b"".join(r.value or b"" for r in topics["events"])
    assert ride_id.encode() in events and b"dispatch.Rider.Registered" in events
    assert any(b"OpenRide" in (r.value or b"") for r in topics["shard-messages"])
    assert topics["checkpoints"], "the checkpoints topic holds the sealed matcher rows"
    for role, records in sorted(topics.items()):
        if role not in CLEAR_UNTIL_RETENTION:
            assert _hits(records) == [], role
    # What erasure does not reach (docs/PRIVACY.md, "Deadlines"): pings hold the positions.
    assert _hits(topics["locations"]), "pings hold the driver's positions until retention"
    # The commands that registered them and requested the ride were sealed, each under a
    # key of its own, made once and tombstoned by the batch that decided it.
    sealed = [r for r in topics["commands"] if b'"command_key"' in (r.value or b"")]
    assert len(sealed) >= 3, "the registrations and the ride request went sealed"
    command_keys = _read_topics(settings, "read_committed", only="command-keys")
    last = {r.key.decode(): r.value for r in command_keys["command-keys"]}
    for record in sealed:
        assert last[orjson.loads(record.value)["command_key"]] is None, "its key tombstoned"

    # Each subject's key was made once (one committed key record: an aborted duplicate is
    # not counted, a second committed one fails) and is now a marker and a tombstone.
    committed = _read_topics(settings, "read_committed", only="subject-keys")
    keys: dict[str, list[Any]] = defaultdict(list)
    for record in committed["subject-keys"]:
        keys[record.key.decode()].append(record.value)
    for subject in (rider_id, driver_id):
        assert keys[subject][-1] is None, "the key's last record is its tombstone"
        made = [v for v in keys[subject] if v is not None]
        assert len(made) == 1, f"{subject}'s key was made {len(made)} times"
        assert "erased_at" in orjson.loads(keys[f"{ERASED_PREFIX}{subject}"][-1])

    # The readers of the log: history opens (the key store is the topic), export keeps tokens.
    monkeypatch.setenv("DISPATCH_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("DISPATCH_SHARDS", str(settings.shards))
    history = _replay(settings, "history", "ride", ride_id, "--json")
    assert "dispatch.Ride.Completed" in history and '"pickup":null' in history
    _replay(settings, "verify")
    export = tmp_path / "export.jsonl"
    _replay(settings, "export", "-o", str(export))
    assert ride_id.encode() in export.read_bytes()
    assert [n for n in _needles() if n in export.read_bytes() + history.encode()] == []

    kept = sorted(p for p in settings.data_dir.rglob("*") if p.is_file())
    assert any(p.name == "views.sqlite" for p in kept)
    held = [f"{p.name}: {n!r}" for p in kept for n in _needles() if n in p.read_bytes()]
    assert held == []
    logs = {"worker 1": first_log.read_bytes(), "worker 2": second_log.read_bytes(),
            "api": caplog.text.encode()}  # fmt: skip
    assert [(k, n) for k, text in logs.items() for n in _needles() if n in text] == []
