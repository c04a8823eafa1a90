"""Ended rides leave the serving process's memory after DISPATCH_ENDED_RIDE_RETENTION_S of
log time and stay answerable: GET /rides/{id} gives the same body from the ended-rides
archive, after a restart too, and `replay history` shows them from the log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from dispatch.api import AuthSettings, create_app, mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.cli import app as cli
from dispatch.runtime import Runtime
from dispatch.settings import Settings

SECRET = "CCisrPB9f_7OMQDgtQXv-O_IxZF-9MDZ6K4SVXRKH9BFVZnm"
AUTH = AuthSettings(secret=SecretStr(SECRET), environment="production")
OPERATOR = {"Authorization": f"Bearer {mint_operator_token(AUTH, 'ops', 'viewer')}"}
PICKUP = {"lat": 37.7749, "lng": -122.4194}
DROPOFF = {"lat": 37.7599, "lng": -122.4148}
RETENTION_S = 1.0


@contextmanager
def serving(data_dir: Path) -> Iterator[tuple[TestClient, Runtime]]:
    settings = Settings(data_dir=data_dir, shards=1, ended_ride_retention_s=RETENTION_S)
    runtime = build_runtime(settings, clock=time.time)
    api = create_app(runtime, AUTH, ApiOptions(read_wait_s=2.0, command_timeout_s=5.0))
    with TestClient(api) as client:
        yield client, runtime


def rider(client: TestClient) -> dict[str, str]:
    r = client.post("/riders", json={"name": "Ray"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']['access_token']}"}


def requested_and_cancelled(client: TestClient) -> str:
    headers = rider(client)
    r = client.post("/rides", headers=headers, json={"pickup": PICKUP, "dropoff": DROPOFF})
    assert r.status_code == 201, r.text
    ride_id: str = r.json()["ride_id"]
    r = client.post(f"/rides/{ride_id}/cancel", headers=headers)
    assert r.status_code == 200, r.text
    return ride_id


def body(client: TestClient, ride_id: str) -> Any:
    r = client.get(f"/rides/{ride_id}", headers=OPERATOR, params={"after": _head(client)})
    assert r.status_code == 200, r.text
    return r.json()


def _head(client: TestClient) -> str:
    ready = client.get("/readyz").json()
    return f"0:{ready['shards'][0]['head']}"


def test_an_evicted_ride_is_answered_from_the_archive_with_the_same_body(tmp_path: Path) -> None:
    with serving(tmp_path) as (client, runtime):
        ride_id = requested_and_cancelled(client)
        before = body(client, ride_id)
        assert before["status"] == "cancelled" and ride_id in runtime.views.rides
        time.sleep(RETENTION_S + 0.1)
        later = requested_and_cancelled(client)  # a later ride event of the shard: the clock
        body(client, later)
        assert ride_id not in runtime.views.rides, "evicted from memory"
        assert body(client, ride_id) == before
        runtime.runner.keeper.save()  # type: ignore[union-attr]  # archived now
        assert ride_id not in runtime.views.evicted and runtime.ended_ride(ride_id) is not None
        assert body(client, ride_id) == before
        unknown = "00000000-0000-4000-8000-000000000000"
        assert client.get(f"/rides/{unknown}", headers=OPERATOR).status_code == 404

    with serving(tmp_path) as (client, runtime):  # a restart: kept views, the archive
        assert ride_id not in runtime.views.rides
        assert body(client, ride_id) == before

    history = CliRunner().invoke(
        cli, ["replay", "history", "ride", ride_id, "--data-dir", str(tmp_path)]
    )
    assert history.exit_code == 0, history.output
    assert "dispatch.Ride.Cancelled" in history.output


def test_a_ride_not_yet_archived_is_answered_from_the_evicted_rows(tmp_path: Path) -> None:
    with serving(tmp_path) as (client, runtime):
        ride_id = requested_and_cancelled(client)
        before = body(client, ride_id)
        time.sleep(RETENTION_S + 0.1)
        body(client, requested_and_cancelled(client))
        assert ride_id in runtime.views.evicted and runtime.ended_ride(ride_id) is None
        assert body(client, ride_id) == before


def test_an_evicted_ride_s_event_stream_replays_its_timeline_and_ends(tmp_path: Path) -> None:
    with serving(tmp_path) as (client, runtime):
        ride_id = requested_and_cancelled(client)
        # Read after the cancellation (as an app would after its write): without ``after``
        # a busy machine may serve the stream before the view has the ride's end, and the
        # stream then ends on the live event instead ("Ride.CancelledByRider").
        after = {"after": _head(client)}
        live = client.get(f"/rides/{ride_id}/events", headers=OPERATOR, params=after)
        assert live.status_code == 200 and "ride already ended" in live.text
        time.sleep(RETENTION_S + 0.1)
        body(client, requested_and_cancelled(client))  # a later ride event: the clock
        runtime.runner.keeper.save()  # type: ignore[union-attr]  # archived now
        assert ride_id not in runtime.views.rides and runtime.ended_ride(ride_id) is not None
        archived = client.get(f"/rides/{ride_id}/events", headers=OPERATOR)
        assert archived.status_code == 200 and archived.text == live.text
