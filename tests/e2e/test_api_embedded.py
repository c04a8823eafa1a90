"""The HTTP API over a real embedded runtime (shard workers, SQLite log, projections).

A driver and a rider use the API as their apps would: the offer reaches the driver's event
stream, every step of the ride shows on the ride's stream and in ``GET /rides/{id}``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.api import AuthSettings, create_app, mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.domain.operators import OPERATOR_NAMESPACE
from dispatch.runtime import Runtime
from dispatch.settings import Settings

PICKUP = {"lat": 37.7749, "lng": -122.4194}
DROPOFF = {"lat": 37.7599, "lng": -122.4148}
NEAR_PICKUP = {"lat": 37.7755, "lng": -122.4185}
SECRET = "RK8jwrZJhwMWBUicd4JMXi1isUNFNGCNt9SgcrRltfX4ppss"  # random: production refuses weak ones
WAIT_S = 5.0


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    operator: dict[str, str]

    def register_driver(self, name: str = "Dee") -> tuple[str, dict[str, str]]:
        """Registered as an app would: with a key, retried while the answer is a 202 (on
        Kafka a worker may still be taking its shards over)."""
        key = {"Idempotency-Key": str(uuid.uuid4())}
        deadline = time.monotonic() + 6 * WAIT_S
        while True:
            r = self.client.post("/drivers", json={"name": name, "home": PICKUP}, headers=key)
            if r.status_code != 202 or time.monotonic() > deadline:
                break
        assert r.status_code == 201, r.text
        body = r.json()
        return body["driver_id"], bearer(body["token"]["access_token"])

    def register_rider(self, name: str = "Ray") -> tuple[str, dict[str, str]]:
        r = self.client.post("/riders", json={"name": name})
        assert r.status_code == 201, r.text
        body = r.json()
        return body["rider_id"], bearer(body["token"]["access_token"])

    def online_near_pickup(self, driver_id: str, auth: dict[str, str]) -> str:
        """Online, then a ping near the pickup; returns the consistency token of going
        online."""
        online = self.client.post(f"/drivers/{driver_id}/online", headers=auth)
        assert online.status_code == 200, online.text
        r = self.client.post(f"/drivers/{driver_id}/location", headers=auth, json=NEAR_PICKUP)
        assert r.status_code == 202, r.text
        return str(online.json()["position"])

    def head(self, shard: int = 0) -> int:
        head = self.runtime.head(shard)
        assert head is not None, "the embedded log always knows its head"
        return head


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class EventStream:
    """Reads a server-sent event stream on a thread; ``next`` waits with a bound."""

    client: TestClient
    url: str
    headers: dict[str, str]
    events: queue.Queue[tuple[str, dict[str, Any]]] = field(default_factory=queue.Queue)
    status: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    _opened: threading.Event = field(default_factory=threading.Event)

    def open(self) -> EventStream:
        threading.Thread(target=self._read, daemon=True).start()
        assert self._opened.wait(WAIT_S), f"{self.url} did not answer"
        return self

    def _read(self) -> None:
        try:
            with self.client.stream("GET", self.url, headers=self.headers) as r:
                self.status = r.status_code
                self._opened.set()
                kind, data = "message", ""
                for line in r.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("event: "):
                        kind = line[len("event: ") :]
                    elif line.startswith("data: "):
                        data = line[len("data: ") :]
                    elif line == "" and data:
                        self.events.put((kind, json.loads(data)))
                        kind, data = "message", ""
        finally:
            self._opened.set()
            self.ended.set()

    def next(self, kind: str | None = None) -> tuple[str, dict[str, Any]]:
        """The next event (of ``kind``, skipping others), waiting at most WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {kind or 'event'} on {self.url}"
            got = self.events.get(timeout=remaining)
            if kind is None or got[0] == kind:
                return got

    def close(self) -> None:
        self.stop.set()


def serve(settings: Settings) -> Iterator[Api]:
    runtime = build_runtime(settings, clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    options = ApiOptions(heartbeat_s=0.2, read_wait_s=1.0, command_timeout_s=5.0)
    with TestClient(create_app(runtime, auth, options)) as client:
        yield Api(client, runtime, bearer(mint_operator_token(auth, "ops", "admin")))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from serve(Settings(data_dir=tmp_path, shards=2, offer_timeout_s=60.0))


@contextmanager
def kafka_worker(settings: Settings, log: Path) -> Iterator[None]:
    """A `dispatch worker` process on the test's topics, stopped by its pid afterwards."""
    proc = start_worker(settings, log, "api-test")
    try:
        yield
    finally:
        stop_worker(proc)


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def any_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The API embedded, and on the real broker with a worker process."""
    if request.param == "embedded":
        yield from serve(Settings(data_dir=tmp_path, shards=2, offer_timeout_s=60.0))
        return
    topics = request.getfixturevalue("kafka_topics")
    settings = Settings(
        kafka_bootstrap=topics.bootstrap,
        topic_prefix=topics.prefix,
        shards=topics.partitions,
        offer_timeout_s=60.0,
    )
    with kafka_worker(settings, tmp_path / "worker.log"):
        yield from serve(settings)


@pytest.mark.kafka
def test_pings_taken_by_one_api_process_show_in_another_processes_views(
    kafka_topics: Any, tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_topics.bootstrap,
        topic_prefix=kafka_topics.prefix,
        shards=kafka_topics.partitions,
        offer_timeout_s=60.0,
    )
    with (
        kafka_worker(settings, tmp_path / "worker.log"),
        contextmanager(serve)(settings) as a,
        contextmanager(serve)(settings) as b,
    ):
        driver_id, driver = a.register_driver()
        token = a.online_near_pickup(driver_id, driver)  # the ping goes through a only
        deadline = time.monotonic() + WAIT_S
        while True:
            r = b.client.get(
                "/drivers/nearby", headers=b.operator, params={**PICKUP, "after": token}
            )
            assert r.status_code == 200, r.text
            if [d["driver_id"] for d in r.json()["drivers"]] == [driver_id]:
                break
            assert time.monotonic() < deadline, f"b never saw the driver's ping: {r.text}"
            time.sleep(0.05)
        ready = b.client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["reason"] == "", ready.text
        seen = b.client.get(f"/drivers/{driver_id}", headers=b.operator).json()
        assert seen["status"] == "available"
        assert seen["location"]["lat"] == NEAR_PICKUP["lat"]
        assert seen["location"]["lng"] == NEAR_PICKUP["lng"]


def test_a_ride_from_request_to_drop_off_over_http(any_api: Api) -> None:
    api = any_api
    c = api.client
    driver_id, driver = api.register_driver()
    rider_id, rider = api.register_rider()
    token = api.online_near_pickup(driver_id, driver)
    offers = EventStream(c, f"/drivers/{driver_id}/offers?max_s=30&after={token}", driver).open()
    try:
        kind, snapshot = offers.next("snapshot")
        assert snapshot["data"]["status"] == "available"

        r = c.post("/rides", headers=rider, json={"pickup": PICKUP, "dropoff": DROPOFF})
        assert r.status_code == 201, r.text
        ride_id = r.json()["ride_id"]

        _, offer = offers.next("Driver.OfferReceived")
        assert offer["data"]["ride_id"] == ride_id
        assert offer["data"]["ride"]["pickup"] == PICKUP
        assert offer["position"].startswith("0:")

        ride_events = EventStream(c, f"/rides/{ride_id}/events", rider).open()
        assert [ride_events.next()[0] for _ in range(2)] == ["Ride.Requested", "Ride.Offered"]

        steps = [
            ("accept", "Ride.Accepted", "accepted"),
            ("arrived", "Ride.DriverArrived", "driver_arrived"),
            ("start", "Ride.TripStarted", "in_progress"),
            ("complete", "Ride.Completed", "completed"),
        ]
        for action, event, status in steps:
            r = c.post(f"/rides/{ride_id}/{action}", headers=driver)
            assert r.status_code == 200, r.text
            token = r.json()["position"]
            seen = c.get(f"/rides/{ride_id}", headers=rider, params={"after": token})
            assert seen.status_code == 200
            assert seen.json()["status"] == status
            assert seen.json()["timeline"][-1]["event"] == event
            kind, data = ride_events.next()
            assert (kind, data["aggregate_id"]) == (event, ride_id)
            if action == "accept":
                assert offers.next("Driver.Assigned")[1]["data"]["ride_id"] == ride_id

        assert ride_events.next("end")[1] == {"reason": "Ride.Completed"}
        assert ride_events.ended.wait(WAIT_S), "the ride's stream ends with the ride"
        assert offers.next("Driver.Released")[1]["data"]["reason"] == "completed"
        timeline = c.get(f"/rides/{ride_id}", headers=api.operator).json()["timeline"]
        assert [e["event"] for e in timeline] == [
            "Ride.Requested",
            "Ride.Offered",
            "Ride.Accepted",
            "Ride.DriverArrived",
            "Ride.TripStarted",
            "Ride.Completed",
        ]
        assert c.get(f"/rides/{ride_id}", headers=rider).json()["rider_id"] == rider_id
    finally:
        offers.close()


def test_a_write_is_visible_to_a_query_that_passes_its_consistency_token(api: Api) -> None:
    c = api.client
    driver_id, driver = api.register_driver()
    api.runtime.runner.stop()  # the views stop following the log...
    api.runtime.runner.catch_up()  # (once the registration is in, whatever the timing)
    r = c.post(f"/drivers/{driver_id}/online", headers=driver)
    assert r.status_code == 200
    token = r.json()["position"]
    assert c.get(f"/drivers/{driver_id}", headers=driver).json()["status"] == "offline"
    late = c.get(f"/drivers/{driver_id}", headers=driver, params={"after": token})
    assert late.status_code == 504  # ...so a read after the token cannot be served in time
    assert late.json()["error"] == "view_behind"

    api.runtime.runner.catch_up()
    r = c.get(f"/drivers/{driver_id}", headers={**driver, "X-Consistency-Token": token})
    assert r.status_code == 200
    assert r.json()["status"] == "available"


def test_a_consistency_token_past_the_log_head_is_refused_at_once(api: Api) -> None:
    _, rider = api.register_rider()
    far = f"0:{api.head() + 1_000}"
    r = api.client.get("/drivers/nearby", headers=rider, params={**PICKUP, "after": far})
    assert r.status_code == 422
    assert "past the log head" in r.json()["reason"]


def test_a_batch_over_500_pings_is_rejected_whole(api: Api) -> None:
    c = api.client
    driver_id, driver = api.register_driver()
    c.post(f"/drivers/{driver_id}/online", headers=driver)
    too_many = {"pings": [NEAR_PICKUP] * 501}

    r = c.post(f"/drivers/{driver_id}/locations", headers=driver, json=too_many)

    assert r.status_code == 422
    assert "at most 500" in r.json()["reason"]
    assert c.get(f"/drivers/{driver_id}", headers=driver).json()["location"] is None


def test_a_batch_with_one_bad_ping_is_rejected_whole(api: Api) -> None:
    c = api.client
    driver_id, driver = api.register_driver()
    c.post(f"/drivers/{driver_id}/online", headers=driver)
    pings = [NEAR_PICKUP] * 10 + [{"lat": 91.0, "lng": 0.0}]

    r = c.post(f"/drivers/{driver_id}/locations", headers=driver, json={"pings": pings})

    assert r.status_code == 422
    assert r.json()["details"][0]["loc"] == ["body", "pings", "10", "lat"]
    assert c.get(f"/drivers/{driver_id}", headers=driver).json()["location"] is None


def test_a_batch_of_500_pings_moves_the_driver_to_the_latest(api: Api) -> None:
    c = api.client
    driver_id, driver = api.register_driver()
    c.post(f"/drivers/{driver_id}/online", headers=driver)
    now = time.time()
    pings = [
        {"lat": 37.77 + i * 1e-5, "lng": -122.42, "at": _iso(now - 500 + i)} for i in range(500)
    ]

    r = c.post(f"/drivers/{driver_id}/locations", headers=driver, json={"pings": pings})

    assert (r.status_code, r.json()) == (202, {"accepted": 500})
    location = c.get(f"/drivers/{driver_id}", headers=driver).json()["location"]
    assert location["lat"] == pytest.approx(37.77 + 499e-5)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('{"name": "Dee", "home": {"lat": 37.7', "JSON"),
        ({"name": "Dee", "home": {"lat": 95, "lng": 0}}, "less than or equal to 90"),
        ({"name": "Dee", "home": {"lat": 37.7, "lng": -122.4}, "age": 3}, "Extra inputs"),
        ({"home": {"lat": 37.7, "lng": -122.4}}, "Field required"),
    ],
)
def test_bad_input_gets_a_422_with_the_reason(api: Api, body: Any, needle: str) -> None:
    if isinstance(body, str):
        r = api.client.post("/drivers", content=body, headers={"Content-Type": "application/json"})
    else:
        r = api.client.post("/drivers", json=body)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"
    assert needle in r.json()["reason"]


def test_unknown_ids_are_404(api: Api) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    assert api.client.get(f"/rides/{unknown}", headers=api.operator).status_code == 404
    assert api.client.get(f"/drivers/{unknown}", headers=api.operator).status_code == 404


def test_operations_report_readiness_and_metrics(api: Api) -> None:
    api.register_driver()
    api.runtime.runner.catch_up()  # the views follow the log a moment behind the write
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["shards"][0]["lag"] == 0
    text = api.client.get("/metrics").text
    assert 'dispatch_api_command_outcomes_total{code="ok",command="register_driver"} 1.0' in text
    assert 'route="/drivers"' in text
    assert 'dispatch_projection_position{shard="0"}' in text
    assert "dispatch_matcher_offers_total" in text


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


def test_a_live_operator_cancel_frame_names_the_operator_to_operators_only(api: Api) -> None:
    c = api.client
    driver_id, driver = api.register_driver()
    _, rider = api.register_rider()
    api.online_near_pickup(driver_id, driver)
    r = c.post("/rides", headers=rider, json={"pickup": PICKUP, "dropoff": DROPOFF})
    assert r.status_code == 201, r.text
    ride_id = r.json()["ride_id"]
    deadline = time.monotonic() + WAIT_S
    # a 404 until the views have the ride (they follow the log a moment behind the write)
    while c.get(f"/rides/{ride_id}", headers=rider).json().get("offered_to") != driver_id:
        assert time.monotonic() < deadline, "the ride was never offered to the driver"
        time.sleep(0.02)
    assert c.post(f"/rides/{ride_id}/accept", headers=driver).status_code == 200
    streams = {
        who: EventStream(c, f"/rides/{ride_id}/events?max_s=30", headers).open()
        for who, headers in (("rider", rider), ("driver", driver), ("operator", api.operator))
    }
    try:
        for stream in streams.values():  # the timeline so far: what follows is live
            stream.next("Ride.Accepted")

        cancel = c.post(
            f"/rides/{ride_id}/operator-cancel", headers=api.operator, json={"reason": "dup"}
        )
        assert cancel.status_code == 200, cancel.text

        frames = {who: s.next("Ride.CancelledByOperator")[1] for who, s in streams.items()}
        assert frames["rider"]["data"] == {"reason": "dup"}
        assert frames["driver"]["data"] == {"reason": "dup"}
        assert frames["operator"]["data"] == {
            "operator_id": str(uuid.uuid5(OPERATOR_NAMESPACE, "ops")),
            "operator_name": "ops",
            "operator_role": "admin",
            "reason": "dup",
        }
        assert len({f["position"] for f in frames.values()}) == 1  # one event, three views
    finally:
        for stream in streams.values():
            stream.close()
