"""The /ops time slider on the real broker: ``GET /ops/state?at=``'s child process
(``dispatch.api.ops_page.past``) reads the serving process's topics, whatever its own
environment says, from the view-history point the serving process kept plus the events
topic's tail up to the moment; its picture equals the one folded from the start of the
topic, with fewer events folded (docs/OPERATIONS.md, "The time slider")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_deployment import one_shard
from kafka_shard_host import ShardZero
from typer.testing import CliRunner

from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.api.ops_page.past import PastStates
from dispatch.bootstrap import (
    build_log_source,
    build_personal,
    build_view_history,
    build_view_stores,
    log_name,
    serving_projections,
)
from dispatch.cli import app
from dispatch.domain.ids import new_id
from dispatch.replay.past import ops_state_at
from dispatch.settings import Settings
from projections.keeper import ViewKeeper
from projections.ops_picture import Limits
from projections.views import ViewSet
from schemas import commands as c

pytestmark = pytest.mark.kafka
HERE = {"lat": 37.7749, "lng": -122.4194}
SAME = ("rides", "rides_total", "drivers_by_status", "surge")


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[Settings]:  # fmt: skip
    monkeypatch.setenv("DISPATCH_TOPIC_PREFIX", "not-these-topics")  # the child must not read it
    yield from one_shard(kafka_bootstrap, tmp_path, "past")


def keep_history_point(settings: Settings) -> float:
    """Fold the events topic as a serving process does, with pings at one place, keep the
    views with a history point (under the data dir); the point's time."""
    personal = build_personal(settings)
    views = ViewSet(serving_projections(settings, personal.open))
    source = build_log_source(settings)
    for shard in source.shards():
        for page in source.read_pages(shard, 0):
            views.apply_page(page)
    for driver in views.drivers.rows:
        views.locations.positions[driver] = (HERE["lat"], HERE["lng"], views.folded_until)
    store, archive = build_view_stores(settings)
    history = build_view_history(settings)
    assert history is not None
    ViewKeeper(views, store, archive, log_name(settings), every_s=0, history=history).save()
    archive.close()
    (taken,) = history.times()
    return taken


def from_the_start(settings: Settings, at: float) -> dict[str, Any]:
    personal = build_personal(settings)

    def pickup_of(value: Any) -> list[float] | None:
        opened = personal.open(value, "pickup")
        return [opened[0], opened[1]] if isinstance(opened, list) else None

    return ops_state_at(build_log_source(settings), at,
                        serving_projections(settings, personal.open), None, log_name(settings),
                        pickup_of, Limits(10_000, 10_000))  # fmt: skip


def test_a_past_moment_is_folded_from_the_kept_point_and_the_topics_tail(
    deployment: Settings,
) -> None:
    assert deployment.kafka_bootstrap is not None
    bus = KafkaTransport(deployment.kafka_bootstrap, deployment.topic_prefix)
    t0 = float(int(time.time()) - 3_600)  # whole seconds: event times are in microseconds
    shard = ShardZero(deployment, "past", bus, clock="stream")
    try:
        drivers = [new_id(0) for _ in range(3)]
        rider = new_id(0)
        for i, d in enumerate(drivers):
            assert shard.send(c.RegisterDriver(driver_id=d, name="d"), at=t0 + i).accepted
            assert shard.send(c.GoOnline(driver_id=d), at=t0 + 5 + i).accepted
        assert shard.send(c.RegisterRider(rider_id=rider, name="r"), at=t0 + 10).accepted
        ride = c.RequestRide(ride_id=new_id(0), rider_id=rider, pickup=HERE, dropoff=HERE)
        assert shard.send(ride, at=t0 + 11).accepted
        taken = keep_history_point(deployment)
        assert t0 + 11 <= taken < t0 + 60
        assert shard.send(c.GoOffline(driver_id=drivers[0]), at=t0 + 600).accepted
    finally:
        shard.worker.close()
        bus.close()
    past = PastStates(deployment, 120.0)

    before = asyncio.run(past.at(t0 + 300))
    after = asyncio.run(past.at(t0 + 900))

    assert before["note"].startswith("folded from the view history point")
    assert after["note"].startswith("folded from the view history point")
    assert before["drivers_by_status"]["available"] == 3
    assert after["drivers_by_status"]["available"] == 2
    assert after["drivers_by_status"]["offline"] == 1
    assert {d["lat"] for d in after["drivers"]} == {HERE["lat"]}  # drawn at the point's pings
    assert before["rides"][0]["pickup"] == [HERE["lat"], HERE["lng"]]  # opened by the child
    for asked, seen in ((t0 + 300, before), (t0 + 900, after)):
        slow = from_the_start(deployment, asked)
        assert {k: seen[k] for k in SAME} == {k: slow[k] for k in SAME}
        assert seen["events_folded"] < slow["events_folded"]


def test_a_replay_of_topics_that_do_not_exist_says_so_rather_than_drawing_nothing(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_TOPIC_PREFIX", f"test-none-{new_id(0).hex[:8]}")
    at = ["--at", "2026-01-05T08:30:00Z", "--kafka", kafka_bootstrap, "--data-dir", str(tmp_path)]

    result = CliRunner().invoke(app, ["replay", "state", "--ops", *at])

    assert result.exit_code == 2
    assert "has no topic 'test-none-" in result.output and "DISPATCH_TOPIC_PREFIX" in result.output
