"""Every event the engine writes matches its published schema, and the files are current."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import h3
import pytest
from engine_commands import decide

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.messages import Ping
from dispatch.settings import MarketConfig, PlaceConfig, Settings
from dispatch.simulator.embedded import run_embedded
from dispatch.simulator.runner import SimConfig
from schemas import commands as c
from schemas.common import LatLng
from schemas.events import EVENT_DATA, validate_exported

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_767_600_000.0
SHORT = h3.cell_to_latlng(h3.latlng_to_cell(37.80, -122.42, 8))  # a hint cell's centre
AIRPORT = {"type": "Polygon", "coordinates": [[[-122.40, 37.600], [-122.375, 37.600],
           [-122.375, 37.615], [-122.40, 37.615], [-122.40, 37.600]]]}  # fmt: skip


def test_every_event_of_a_simulated_run_matches_its_published_schema(tmp_path: Path) -> None:
    report = run_embedded(
        SimConfig(
            drivers=200,
            minutes=8,
            seed=11,
            cancel_probability=0.3,
            trip_mean_m=800,
            demand_per_min=15,
            warmup_minutes=0,
        ),
        Settings(data_dir=tmp_path, shards=1),
    )
    seen: set[str] = set()
    source = SqliteLogSource(tmp_path)
    for event in source.read(0):
        validate_exported(event.as_json())
        seen.add(event.topic)
    assert report.events > 500
    assert {
        "dispatch.Ride.Requested",
        "dispatch.Ride.Offered",
        "dispatch.Ride.Completed",
        "dispatch.Driver.Released",
        "dispatch.CommandRecord.Handled",
    } <= seen


def test_sealed_hints_and_place_crossings_match_their_published_schemas(
    tmp_path: Path,
) -> None:
    """A driver's hint (cell and centre) and place crossings are stored sealed under the
    driver's key: the exported events match their schemas as stored."""
    now = [T0]
    place = PlaceConfig(id="sfo", name="SFO", area=AIRPORT, queue=True)
    market = MarketConfig(name="sf", shard=0, lat=37.77, lng=-122.42, radius_km=40,
                          places=[place])  # fmt: skip
    settings = Settings(data_dir=tmp_path, shards=1, markets=[market], hint_every_s=30,
                        hint_min_interval_s=300, max_wait_s=900, search_radius_m=1_000,
                        ping_ttl_s=600)  # fmt: skip
    engine = build_embedded_engine(settings, lambda: now[0])
    idle, queued, rider = new_id(0), new_id(0), new_id(0)
    for driver, (lat, lng) in ((idle, (SHORT[0] - 0.02, SHORT[1])), (queued, (37.605, -122.385))):
        assert decide(engine, now[0], c.RegisterDriver(driver_id=driver, name="d")).accepted
        assert decide(engine, now[0], c.GoOnline(driver_id=driver)).accepted
        engine.transport.send_pings([Ping(driver, lat, lng, now[0])])
    assert decide(engine, now[0], c.RegisterRider(rider_id=rider, name="r")).accepted
    here = LatLng(lat=SHORT[0], lng=SHORT[1])
    request = c.RequestRide(ride_id=new_id(0), rider_id=rider, pickup=here, dropoff=here)
    assert decide(engine, now[0], request).accepted
    for _ in range(3):  # the ride waits beyond its search radius: the hint cadence runs
        now[0] += 31
        engine.run_once()
    engine.stop()
    topics = set()
    for event in SqliteLogSource(tmp_path).read(0):
        validate_exported(event.as_json())
        topics.add(event.topic)
    assert {"dispatch.Driver.Hinted", "dispatch.Driver.EnteredPlace"} <= topics


def test_an_event_with_an_unpublished_field_is_refused() -> None:
    record = {
        "shard": 0,
        "position": 1,
        "aggregate_id": "00000000-0000-4000-8000-000000000001",
        "version": 2,
        "type": "dispatch.Ride.Expired",
        "at": "2026-01-01T00:00:00+00:00",
        "data": {"surprise": 1},
    }
    with pytest.raises(ValueError):
        validate_exported(record)


def test_every_domain_event_type_has_a_published_schema() -> None:
    from dispatch.domain import command_record, credentials, driver, ride, rider, surge
    from dispatch.shard import links

    topics = set()
    for module, name in (
        (ride, "Ride"),
        (driver, "Driver"),
        (rider, "Rider"),
        (command_record, "CommandRecord"),
        (credentials, "Credentials"),
        (links, "Link"),
        (surge, "Surge"),
    ):
        aggregate = getattr(module, name)
        for value in vars(aggregate).values():
            topic = getattr(value, "TOPIC", None)
            if isinstance(value, type) and topic and topic != aggregate.TOPIC:
                topics.add(topic)
    assert topics == set(EVENT_DATA)


def test_the_committed_json_schema_files_are_current() -> None:
    generated = runpy.run_path(str(ROOT / "scripts" / "export_schemas.py"))["all_schemas"]()
    for name, schema in generated.items():
        committed = json.loads((ROOT / "schemas" / "json" / name).read_text())
        assert committed == json.loads(json.dumps(schema)), (
            f"{name} is stale: run scripts/export_schemas.py"
        )


def test_a_cancel_by_operator_whose_operator_name_is_not_a_name_is_refused() -> None:
    record = {
        "shard": 0,
        "position": 1,
        "aggregate_id": "00000000-0000-4000-8000-000000000001",
        "version": 3,
        "type": "dispatch.Ride.CancelledByOperator",
        "at": "2026-01-01T00:00:00+00:00",
        "data": {
            "operator_id": "00000000-0000-5000-8000-000000000002",
            "operator_name": "Not A Name",
            "operator_role": "dispatcher",
            "reason": "dup",
        },
    }
    with pytest.raises(ValueError, match="operator_name"):
        validate_exported(record)
