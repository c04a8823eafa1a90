"""Every event the engine writes matches its published schema, and the files are current."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.settings import Settings
from dispatch.simulator.embedded import run_embedded
from dispatch.simulator.runner import SimConfig
from schemas.events import EVENT_DATA, validate_exported

ROOT = Path(__file__).resolve().parents[3]


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
    from dispatch.domain import command_record, credentials, driver, ride, rider
    from dispatch.shard import links

    topics = set()
    for module, name in (
        (ride, "Ride"),
        (driver, "Driver"),
        (rider, "Rider"),
        (command_record, "CommandRecord"),
        (credentials, "Credentials"),
        (links, "Link"),
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
