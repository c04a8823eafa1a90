"""Operators' reads are recorded before they are answered: every query and stream an
operator opens leaves a record naming them (`dispatch.read_audit`); riders' and drivers'
reads leave none; a read that cannot be recorded is refused (503) and shows nothing; and
`dispatch replay audit --reads` lists the reads beside the changes."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import DROPOFF, PICKUP, SECRET, World, bearer, build_world
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from dispatch.adapters.sqlite.readaudit import SqliteReadAudit, read_audit_path, read_records
from dispatch.api import AuthSettings, create_app, mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_embedded_engine, build_runtime
from dispatch.cli import app as cli
from dispatch.domain.operators import operator_id
from dispatch.read_audit import ReadAuditUnavailable, ReadRecord
from dispatch.settings import Settings


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Path]]:
    data_dir = tmp_path_factory.mktemp("reads")
    worlds = build_world(data_dir)
    yield next(worlds), data_dir
    worlds.close()


def _reads(data_dir: Path) -> list[ReadRecord]:
    return list(read_records(read_audit_path(data_dir)))


def _new(data_dir: Path, before: int) -> list[ReadRecord]:
    return _reads(data_dir)[before:]


def test_an_operators_read_of_a_ride_is_recorded_naming_them_before_the_answer(
    audited: tuple[World, Path],
) -> None:
    world, data_dir = audited
    before = len(_reads(data_dir))
    started = time.time()
    r = world.client.get(f"/rides/{world.ids['ride']}", headers=world.tokens["operator"])
    assert r.status_code == 200, r.text
    [read] = _new(data_dir, before)
    assert (read.operator_name, read.operator_role) == ("vic", "viewer")
    assert read.operator_id == str(operator_id("vic"))
    assert read.route == "GET /rides/{ride_id}"
    assert (read.path, read.query, read.omitted) == ({"ride_id": world.ids["ride"]}, {}, 0)
    assert started - 1 <= read.at <= time.time() and len(read.request_id) == 32


def test_every_kind_of_operator_read_is_recorded_with_its_parameters(
    audited: tuple[World, Path],
) -> None:
    world, data_dir = audited
    before = len(_reads(data_dir))
    driver = world.ids["driver_a"]
    headers = world.tokens["admin"]
    asked = [
        f"/drivers/{driver}",
        "/heatmap?resolution=6",
        f"/drivers/nearby?lat={PICKUP['lat']}&lng={PICKUP['lng']}&limit=3",
    ]
    for path in asked:
        assert world.client.get(path, headers=headers).status_code == 200, path
    with world.client.stream(
        "GET", f"/drivers/{driver}/offers?max_s=0.2", headers=headers
    ) as stream:
        assert stream.status_code == 200
        stream.read()
    reads = _new(data_dir, before)
    assert [r.route for r in reads] == [
        "GET /drivers/{driver_id}",
        "GET /heatmap",
        "GET /drivers/nearby",
        "GET /drivers/{driver_id}/offers",
    ]
    assert (reads[0].path, reads[0].query) == ({"driver_id": driver}, {})
    assert (reads[1].path, reads[1].query) == ({}, {"resolution": "6"})
    assert reads[2].query == {"lat": str(PICKUP["lat"]), "lng": str(PICKUP["lng"]), "limit": "3"}
    assert (reads[3].path, reads[3].query) == ({"driver_id": driver}, {"max_s": "0.2"})
    assert {r.operator_name for r in reads} == {"ada"}


def test_a_read_of_an_unknown_ride_is_recorded_too(audited: tuple[World, Path]) -> None:
    world, data_dir = audited
    before = len(_reads(data_dir))
    unknown = "00000000-0000-4000-8000-000000000000"
    r = world.client.get(f"/rides/{unknown}", headers=world.tokens["dispatcher"])
    assert r.status_code == 404
    [read] = _new(data_dir, before)
    assert read.path == {"ride_id": unknown} and read.operator_name == "dana"


def test_a_query_parameter_cannot_change_which_ride_the_record_names(
    audited: tuple[World, Path],
) -> None:
    world, data_dir = audited
    before = len(_reads(data_dir))
    ride, other = world.ids["ride"], "00000000-0000-4000-8000-000000000001"
    r = world.client.get(f"/rides/{ride}?ride_id={other}", headers=world.tokens["operator"])
    assert r.status_code == 200 and r.json()["ride_id"] == ride
    [read] = _new(data_dir, before)
    assert read.path == {"ride_id": ride} and read.about == ride
    assert read.query == {"ride_id": other}  # kept as sent, not as the ride read


def test_an_id_sent_in_another_form_is_recorded_in_its_canonical_form(
    audited: tuple[World, Path],
) -> None:
    world, data_dir = audited
    before = len(_reads(data_dir))
    ride = world.ids["ride"]
    for sent in (ride.upper(), ride.replace("-", "")):
        assert world.client.get(f"/rides/{sent}", headers=world.tokens["operator"]).is_success
    assert [r.path for r in _new(data_dir, before)] == [{"ride_id": ride}] * 2


def test_filler_query_parameters_cannot_push_the_routes_own_out_of_the_record(
    audited: tuple[World, Path],
) -> None:
    world, data_dir = audited
    before = len(_reads(data_dir))
    filler = "&".join(f"a{i}=1" for i in range(30))
    where = f"lat={PICKUP['lat']}&lng={PICKUP['lng']}"
    r = world.client.get(f"/drivers/nearby?{filler}&{where}", headers=world.tokens["operator"])
    assert r.status_code == 200
    [read] = _new(data_dir, before)
    assert read.query["lat"] == str(PICKUP["lat"]) and read.query["lng"] == str(PICKUP["lng"])
    assert len(read.query) == 16 and read.omitted == 30 - 14


def test_an_operators_read_refused_as_invalid_is_recorded_as_asked(
    audited: tuple[World, Path],
) -> None:
    world, data_dir = audited
    before = len(_reads(data_dir))
    r = world.client.get("/rides/not-a-ride-id", headers=world.tokens["operator"])
    assert r.status_code == 422
    [read] = _new(data_dir, before)
    assert read.path == {"ride_id": "not-a-ride-id"}


def test_an_operators_ride_stream_is_recorded_when_it_opens(audited: tuple[World, Path]) -> None:
    world, data_dir = audited
    before = len(_reads(data_dir))
    ride = world.ids["ride"]
    headers = world.tokens["dispatcher"]
    with world.client.stream("GET", f"/rides/{ride}/events?max_s=0.2", headers=headers) as s:
        assert s.status_code == 200
        s.read()
    [read] = _new(data_dir, before)
    assert read.route == "GET /rides/{ride_id}/events" and read.path == {"ride_id": ride}


def test_every_read_route_a_token_opens_records_operators_reads(
    audited: tuple[World, Path],
) -> None:
    """Every GET of the published API that takes a token, called by an operator, leaves a
    record: a read route added later that forgets it fails here."""
    world, data_dir = audited
    ids = {"ride_id": world.ids["ride"], "driver_id": world.ids["driver_a"], "place_id": "sfo",
           "rider_id": world.ids["rider_r"]}  # fmt: skip
    values = {"lat": str(PICKUP["lat"]), "lng": str(PICKUP["lng"]), "max_s": "0.2"}
    called = []
    before = len(_reads(data_dir))
    for path, operations in world.client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        get = operations.get("get")
        if get is None or not get.get("security"):
            continue
        params = [p for p in get.get("parameters", []) if p["in"] == "query"]
        query = "&".join(f"{p['name']}={values[p['name']]}" for p in params if p["name"] in values)
        url = path.format(**ids) + (f"?{query}" if query else "")
        with world.client.stream("GET", url, headers=world.tokens["admin"]) as answer:
            assert answer.status_code == 200, (url, answer.read())
            answer.read()
        called.append(f"GET {path}")
    assert len(called) >= 6
    assert [r.route for r in _new(data_dir, before)] == called


class _Broken:
    """A read audit whose store fails (as a full disk or a lost broker would)."""

    def __init__(self) -> None:
        self.tried = 0

    def record(self, entry: ReadRecord) -> None:
        self.tried += 1
        raise ReadAuditUnavailable("the disk is full")

    def read(self) -> Iterator[ReadRecord]:
        return iter(())

    def close(self) -> None:
        pass


def test_a_read_that_cannot_be_recorded_is_refused_and_shows_nothing(tmp_path: Path) -> None:
    runtime = build_runtime(Settings(data_dir=tmp_path, shards=1), clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    broken = _Broken()
    app = create_app(runtime, auth, ApiOptions(read_wait_s=0.5), reads=broken)
    with TestClient(app) as client:
        r = client.post("/riders", json={"name": "Rosa"})
        assert r.status_code == 201, r.text
        rider = r.json()["rider_id"]
        ride = client.post(
            "/rides",
            headers=bearer(r.json()["token"]["access_token"]),
            json={"pickup": PICKUP, "dropoff": DROPOFF},
        ).json()["ride_id"]
        operator = bearer(mint_operator_token(auth, "vic", "viewer"))
        refused = client.get(f"/rides/{ride}", headers=operator)
        assert refused.status_code == 503
        assert refused.json()["error"] == "audit_unavailable"
        assert refused.headers["Retry-After"] == "5"
        assert ride not in refused.text and rider not in refused.text
        stream = client.get(f"/rides/{ride}/events?max_s=0.2", headers=operator)
        assert stream.status_code == 503
        assert broken.tried == 2


def _replay(*args: str) -> str:
    result = CliRunner().invoke(cli, ["replay", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_replay_audit_with_reads_merges_reads_and_changes_by_time(
    audited: tuple[World, Path],
) -> None:
    world, data_dir = audited
    body = {"pickup": PICKUP, "dropoff": DROPOFF}
    ride = world.client.post("/rides", headers=world.tokens["rider_s"], json=body).json()
    ride_id = ride["ride_id"]
    headers = world.tokens["dispatcher"]
    assert world.client.get(f"/rides/{ride_id}", headers=headers).is_success
    cancel = world.client.post(
        f"/rides/{ride_id}/operator-cancel", headers=headers, json={"reason": "dup"}
    )
    assert cancel.status_code == 200, cancel.text
    assert world.client.get(f"/rides/{ride_id}", headers=headers).is_success

    out = _replay("audit", "--reads", "--json", "--operator", "dana", "--data-dir", str(data_dir))
    mine = [json.loads(line) for line in out.splitlines()]
    mine = [r for r in mine if r["aggregate_id"] == ride_id]
    assert [r["type"] for r in mine] == [
        "OperatorRead",
        "Ride.CancelledByOperator",
        "OperatorRead",
    ]
    assert mine[0]["position"] is None and mine[1]["position"] is not None
    assert mine[0]["details"]["route"] == "GET /rides/{ride_id}"
    assert mine[0]["details"]["path"] == {"ride_id": ride_id}
    assert [r["at"] for r in mine] == sorted(r["at"] for r in mine)

    changes_only = _replay("audit", "--json", "--operator", "dana", "--data-dir", str(data_dir))
    assert "OperatorRead" not in changes_only and ride_id in changes_only


def test_replay_audit_refuses_a_trail_with_a_damaged_read_record(tmp_path: Path) -> None:
    store = SqliteReadAudit(read_audit_path(tmp_path))
    store.record(ReadRecord(1.0, "id", "vic", "viewer", "GET /heatmap"))
    store.close()
    with sqlite3.connect(read_audit_path(tmp_path)) as db:
        db.execute("INSERT INTO operator_reads (record) VALUES (?)", (b"{}",))
    build_embedded_engine(Settings(data_dir=tmp_path, shards=1)).stop()  # an empty log
    result = CliRunner().invoke(cli, ["replay", "audit", "--reads", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "record 2 is damaged" in " ".join(result.output.split())


def test_replay_audit_refuses_reads_of_one_shard(audited: tuple[World, Path]) -> None:
    _, data_dir = audited
    result = CliRunner().invoke(
        cli, ["replay", "audit", "--reads", "--shard", "0", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 2
    assert "operator reads belong to no shard" in " ".join(result.output.split())
