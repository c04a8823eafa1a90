"""A repositioning hint reaches the idle driver's offer stream (``GET
/drivers/{id}/offers``) as a ``Driver.Hinted`` event with the cell, its centre, its demand
and supply, and the driver's ETA there."""

from __future__ import annotations

import json
import time
from pathlib import Path

from api_world import SECRET, bearer
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.settings import Settings

RIDERS_AT = {"lat": 37.80, "lng": -122.42}
DRIVER_AT = {"lat": 37.782, "lng": -122.42}  # 2 km south: beyond the ride's search radius


def test_an_idle_driver_is_told_where_riders_wait(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, shards=1, hint_every_s=0.5, search_radius_m=1_000)
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="development")
    app = create_app(runtime, auth, ApiOptions(command_timeout_s=5.0, heartbeat_s=0.2))
    with TestClient(app) as client:
        r = client.post("/drivers", json={"name": "Dee", "home": DRIVER_AT})
        driver, token = r.json()["driver_id"], bearer(r.json()["token"]["access_token"])
        assert client.post(f"/drivers/{driver}/online", headers=token).is_success
        assert client.post(f"/drivers/{driver}/location", headers=token, json=DRIVER_AT).is_success
        r = client.post("/riders", json={"name": "Rae"})
        rider = bearer(r.json()["token"]["access_token"])
        ride = client.post(
            "/rides", headers=rider, json={"pickup": RIDERS_AT, "dropoff": DRIVER_AT}
        )
        assert ride.status_code == 201, ride.text
        hint = None
        deadline = time.monotonic() + 10
        with client.stream("GET", f"/drivers/{driver}/offers?max_s=8", headers=token) as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "Driver.Hinted":
                    hint = json.loads(line[6:])
                    break
                assert time.monotonic() < deadline
        assert hint is not None, "no hint on the offer stream"
        data = hint.get("data", hint)
        assert data["demand"] == 1 and data["supply"] == 0
        assert abs(data["lat"] - RIDERS_AT["lat"]) < 0.01 and 0 < data["eta_s"] <= 600
