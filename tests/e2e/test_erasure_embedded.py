"""Erasure end to end on the embedded engine (docs/PRIVACY.md): a rider and a driver
register, ride, and are erased over HTTP; then every store under the data dir, an export
and the logs are scanned for their names and the ride's coordinates (as text and as the
binary doubles a pickle holds), and every reader is asked again: the API, `replay history`,
`state`, `export` and `verify`."""

from __future__ import annotations

import logging
import sqlite3
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from dispatch.api import AuthSettings, create_app, mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.api.serve import server_config
from dispatch.api.settings import ApiLimits
from dispatch.bootstrap import build_runtime
from dispatch.cli import app as cli
from dispatch.domain.ids import shard_of
from dispatch.pricing.rules import default_fares
from dispatch.settings import MarketConfig, Settings

SECRET = "RK8jwrZJhwMWBUicd4JMXi1isUNFNGCNt9SgcrRltfX4ppss"
RIDER, DRIVER = "Zelda Quixotewright", "Yannick Wobblestone"
PICKUP = {"lat": 37.7731415, "lng": -122.4172653}
DROPOFF = {"lat": 37.7612347, "lng": -122.4143219}
NEAR_PICKUP = {"lat": 37.7735218, "lng": -122.4170391}
NORTH = {"lat": 38.5816237, "lng": -121.4944015}  # the rider's home, another shard than the ride's
MARKETS = [
    MarketConfig(name="north", shard=0, lat=NORTH["lat"], lng=NORTH["lng"], radius_km=5),
    MarketConfig(name="city", shard=1, lat=PICKUP["lat"], lng=PICKUP["lng"], radius_km=5),
]
FARES = default_fares(MARKETS)  # markets of one's own need fare rules in production
WAIT_S = 5.0


def _needles() -> list[bytes]:
    """What must not be found: the names, and each coordinate as JSON text and as the
    8-byte double (either byte order) a pickle or a binary format holds. Coordinates have
    seven decimals: a short one such as 38.58 turns up inside a timestamp's seconds."""
    found = [RIDER.encode(), DRIVER.encode()]
    places = (PICKUP, DROPOFF, NEAR_PICKUP, NORTH)  # NEAR_PICKUP: pinged; NORTH: rider's home
    for value in (v for place in places for v in place.values()):
        found += [repr(value).encode(), struct.pack(">d", value), struct.pack("<d", value)]
    return found


def _scan(paths: list[Path]) -> list[str]:
    hits = []
    for path in paths:
        data = path.read_bytes()
        hits += [f"{path.name}: {needle!r}" for needle in _needles() if needle in data]
    return hits


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # ended rides leave the rides view at once: the archive holds this one
    return Settings(
        data_dir=tmp_path / "data",
        shards=2,
        markets=MARKETS,
        fares=FARES,
        offer_timeout_s=60.0,
        ended_ride_retention_s=0.0,
        checkpoint_every_events=5,  # shard checkpoints written (matcher rows, aggregates)
    )


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The API over an embedded runtime; leaving it stops the runtime cleanly (which keeps
    the views and archives the ended rides)."""
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    options = ApiOptions(heartbeat_s=0.2, read_wait_s=1.0, command_timeout_s=5.0)
    limits = ApiLimits(rate_limit_requests_per_s=0)  # the driver's 52 quick commands
    with TestClient(create_app(runtime, auth, options, limits)) as c:
        yield c, bearer(mint_operator_token(auth, "ops", "admin"))


def _ride(c: TestClient) -> tuple[str, dict[str, str], str, dict[str, str], str]:
    r = c.post("/riders", json={"name": RIDER, "home": NORTH})
    assert r.status_code == 201, r.text
    rider_id, rider = r.json()["rider_id"], bearer(r.json()["token"]["access_token"])
    r = c.post("/drivers", json={"name": DRIVER, "home": PICKUP})
    assert r.status_code == 201, r.text
    driver_id, driver = r.json()["driver_id"], bearer(r.json()["token"]["access_token"])
    # 52 events on the driver first: a snapshot of them is stored (every 50 events)
    for _ in range(26):
        assert c.post(f"/drivers/{driver_id}/online", headers=driver).status_code == 200
        assert c.post(f"/drivers/{driver_id}/offline", headers=driver, json={}).is_success
    assert c.post(f"/drivers/{driver_id}/online", headers=driver).status_code == 200
    assert c.post(f"/drivers/{driver_id}/location", headers=driver, json=NEAR_PICKUP).is_success
    r = c.post("/rides", headers=rider, json={"pickup": PICKUP, "dropoff": DROPOFF})
    assert r.status_code == 201, r.text
    ride_id = r.json()["ride_id"]
    # opened at the pickup's shard by a message from the rider's (a link's event, sealed too)
    assert shard_of(UUID(ride_id)) != shard_of(UUID(rider_id))
    deadline = time.monotonic() + WAIT_S
    while c.get(f"/rides/{ride_id}", headers=rider).json().get("offered_to") != driver_id:
        assert time.monotonic() < deadline, "the ride was never offered to the driver"
        time.sleep(0.02)
    for action in ("accept", "arrived", "start", "complete"):
        r = c.post(f"/rides/{ride_id}/{action}", headers=driver)
        assert r.status_code == 200, (action, r.text)
    return rider_id, rider, driver_id, driver, ride_id


def _until(check: Any) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (found := check()):
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)
    return found


def _replay(*args: str) -> str:
    result = CliRunner().invoke(cli, ["replay", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_an_erased_rider_and_driver_leave_no_name_or_coordinate_in_any_store(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with serving(settings) as (c, admin):
        rider_id, ride_id = _ride_and_erase(c, admin)
    _check_readers_and_stores(settings, tmp_path, caplog, rider_id, ride_id)


def _ride_and_erase(c: TestClient, admin: dict[str, str]) -> tuple[str, str]:
    rider_id, rider, driver_id, driver, ride_id = _ride(c)
    seen = c.get(f"/rides/{ride_id}", headers=rider).json()
    assert seen["pickup"] == PICKUP and seen["timeline"][0]["data"]["dropoff"] == list(
        DROPOFF.values()
    )  # readers open what is sealed

    # the driver goes offline first (only an offline driver is erased); an admin erases them
    assert c.post(f"/drivers/{driver_id}/offline", headers=driver, json={}).status_code == 200
    assert c.delete(f"/riders/{rider_id}", headers=driver).status_code == 403
    r = c.delete(f"/riders/{rider_id}", headers=rider)
    assert r.status_code == 200, r.text
    assert r.json()["clear_before"] is None  # a new data dir: everything was sealed
    # the erasure revoked the rider's tokens: from its answer on they are refused
    assert c.delete(f"/riders/{rider_id}", headers=rider).status_code == 401
    assert c.delete(f"/riders/{rider_id}", headers=admin).status_code == 200  # idempotent
    assert c.delete(f"/drivers/{driver_id}", headers=admin).status_code == 200

    after = _until(
        lambda: (v := c.get(f"/rides/{ride_id}", headers=admin).json())["pickup"] is None and v
    )
    assert after["dropoff"] is None and after["status"] == "completed"
    assert after["timeline"][0]["data"]["pickup"] == "erased"
    for refused in (
        c.get(f"/rides/{ride_id}", headers=rider),
        c.post("/rides", headers=rider, json={"pickup": PICKUP, "dropoff": DROPOFF}),
        c.post(f"/drivers/{driver_id}/online", headers=driver),
        c.post(f"/drivers/{driver_id}/location", headers=driver, json=NEAR_PICKUP),
        c.post(f"/drivers/{driver_id}/locations", headers=driver, json={"pings": [NEAR_PICKUP]}),
    ):
        assert refused.status_code == 401 and "token revoked" in refused.text, refused.text
    trips = c.get(f"/drivers/{driver_id}", headers=admin)
    assert trips.status_code == 200, trips.text  # the driver's view still answers
    return rider_id, ride_id


def _check_readers_and_stores(
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    rider_id: str,
    ride_id: str,
) -> None:
    data_dir = settings.data_dir
    export = tmp_path / "export.jsonl"
    _replay("export", "--data-dir", str(data_dir), "-o", str(export))
    history = _replay("history", "ride", ride_id, "--json", "--data-dir", str(data_dir))
    assert "completed" in history
    _replay("history", "rider", rider_id, "--json", "--data-dir", str(data_dir))
    _replay("state", "--at", "2100-01-01", "--data-dir", str(data_dir))
    _replay("verify", "--data-dir", str(data_dir))
    _check_audit(data_dir)

    stores = sorted(p for p in data_dir.rglob("*") if p.is_file())
    names = {p.name for p in stores}
    assert {"shard-0000.sqlite", "views.sqlite", "ended-rides.sqlite", "subject-keys.sqlite"} <= (
        names
    )
    # the scanned files hold the ride (so a plaintext copy there would have been found)
    assert ride_id.encode() in (data_dir / "ended-rides.sqlite").read_bytes()
    assert ride_id.encode() in export.read_bytes()
    shard = f"shard-{int(ride_id[:4], 16):04d}.sqlite"  # with its write-ahead log
    held = b"".join(p.read_bytes() for p in stores if p.name.startswith(shard))
    assert b"dispatch.Ride.Requested" in held and ride_id.encode() in held
    home = f"shard-{int(rider_id[:4], 16):04d}.sqlite"  # the rider's: its OpenRide message
    sent = b"".join(p.read_bytes() for p in stores if p.name.startswith(home))
    assert b"dispatch.Link.Sent" in sent and b"OpenRide" in sent
    # the snapshot and checkpoint tables scanned below are not empty
    counts = _rows(stores, ("stored_snapshots", "shard_checkpoints"))
    assert counts["stored_snapshots"] > 0 and counts["shard_checkpoints"] > 0, counts
    assert _scan([*stores, export]) == []
    log_text = caplog.text.encode()
    assert [n for n in _needles() if n in log_text] == []
    _check_access_log()


def _rows(stores: list[Path], tables: tuple[str, ...]) -> dict[str, int]:
    """How many rows the shard files hold in each of ``tables``."""
    counts = dict.fromkeys(tables, 0)
    for path in stores:
        if not (path.name.startswith("shard-") and path.suffix == ".sqlite"):
            continue
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            for table in tables:
                with suppress(sqlite3.OperationalError):  # no such table in this file
                    counts[table] += db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            db.close()
    return counts


def _check_audit(data_dir: Path) -> None:
    """``replay audit`` reads a log with erasures in it (review finding 3): the admin's
    erasure of the driver names the admin, their name and role; the rider's own erasure
    is no operator action."""
    lines = _replay("audit", "--json", "--data-dir", str(data_dir)).splitlines()
    records = [orjson.loads(line) for line in lines if line.strip()]
    erasures = [r for r in records if "Erased" in r["type"]]
    assert [(r["type"], r["operator_name"], r["operator_role"]) for r in erasures] == [
        ("Driver.ErasedByOperator", "ops", "admin")
    ], records
    _replay("audit", "--reads", "--data-dir", str(data_dir))


def _check_access_log() -> None:
    """The TestClient runs no uvicorn, so its access log is checked apart: the served
    config's filter writes a rider's nearby query without its coordinates (a real server
    is run by test_api_abuse_limits)."""
    server_config(object(), ApiLimits(), "127.0.0.1", 0)
    access = logging.getLogger("uvicorn.access")
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        0,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5",
            "GET",
            f"/drivers/nearby?lat={PICKUP['lat']}&lng={PICKUP['lng']}",
            "1.1",
            200,
        ),
        None,
    )
    assert all(f.filter(record) for f in access.filters if isinstance(f, logging.Filter))
    message = record.getMessage().encode()
    assert b"/drivers/nearby" in message and [n for n in _needles() if n in message] == []


def test_a_name_that_looks_sealed_is_sealed_and_its_rider_survives_a_restart(
    settings: Settings,
) -> None:
    """Review finding 1 over HTTP: a rider named ``pf1.…`` is stored sealed; after a
    restart (read from the shard file) they request a ride, cancel it and are erased."""
    with serving(settings) as (c, _admin):
        r = c.post("/riders", json={"name": f"pf1.{RIDER}", "home": NORTH})
        assert r.status_code == 201, r.text
        rider_id, rider = r.json()["rider_id"], bearer(r.json()["token"]["access_token"])
    held = b"".join(p.read_bytes() for p in settings.data_dir.glob("shard-*"))
    assert RIDER.encode() not in held
    with serving(settings) as (c, _admin):
        r = c.post("/rides", headers=rider, json={"pickup": PICKUP, "dropoff": DROPOFF})
        assert r.status_code == 201, r.text
        ride_id = r.json()["ride_id"]
        r = c.post(f"/rides/{ride_id}/cancel", headers=rider, json={})
        assert r.status_code == 200, r.text
        assert c.delete(f"/riders/{rider_id}", headers=rider).status_code == 200
    held = b"".join(p.read_bytes() for p in settings.data_dir.glob("shard-*"))
    assert RIDER.encode() not in held
