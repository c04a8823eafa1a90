"""The audit trail: an operator's cancel is in the log of record naming who did it, and
survives replay: `replay audit` lists it (by operator name or id), `replay history` shows
it, `replay verify` finds the log clean."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import DROPOFF, PICKUP, World, build_world
from typer.testing import CliRunner

from dispatch.cli import app
from dispatch.domain.operators import operator_id
from schemas.events import validate_exported


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A log where dana (a dispatcher) cancelled one ride and ada (an admin) another."""
    data_dir = tmp_path_factory.mktemp("audit")
    worlds = build_world(data_dir)
    world = next(worlds)
    rides = {"dana": _cancelled(world, "dispatcher"), "ada": _cancelled(world, "admin")}
    worlds.close()  # the runtime stops: the log is on disk
    yield data_dir, rides


def _cancelled(world: World, who: str) -> str:
    body = {"pickup": PICKUP, "dropoff": DROPOFF}
    r = world.client.post("/rides", headers=world.tokens["rider_s"], json=body)
    assert r.status_code == 201, r.text
    ride_id: str = r.json()["ride_id"]
    cancel = world.client.post(
        f"/rides/{ride_id}/operator-cancel", headers=world.tokens[who], json={"reason": "dup"}
    )
    assert cancel.status_code == 200, cancel.text
    return ride_id


def _replay(*args: str) -> str:
    result = CliRunner().invoke(app, ["replay", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_replay_audit_lists_every_operator_action_naming_who(
    audited: tuple[Path, dict[str, str]],
) -> None:
    data_dir, rides = audited
    lines = _replay("audit", "--json", "--data-dir", str(data_dir)).splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["operator_name"], r["aggregate_id"]) for r in records] == [
        ("dana", rides["dana"]),
        ("ada", rides["ada"]),
    ]
    assert records[0]["operator_id"] == str(operator_id("dana"))
    assert [r["operator_role"] for r in records] == ["dispatcher", "admin"]
    assert records[0]["type"] == "Ride.CancelledByOperator"
    assert records[0]["details"] == {"reason": "dup"}


@pytest.mark.parametrize("who", ["ada", str(operator_id("ada"))])
def test_replay_audit_filters_by_operator_name_or_id(
    audited: tuple[Path, dict[str, str]], who: str
) -> None:
    data_dir, rides = audited
    out = _replay("audit", "--operator", who, "--data-dir", str(data_dir))
    assert rides["ada"] in out and f"by ada (admin, {operator_id('ada')})" in out
    assert rides["dana"] not in out


def test_replay_audit_refuses_an_operator_that_is_neither_a_name_nor_an_id(
    audited: tuple[Path, dict[str, str]],
) -> None:
    data_dir, _ = audited
    result = CliRunner().invoke(
        app, ["replay", "audit", "--operator", "Not A Name", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())  # the box wraps lines
    assert "is not 1 to 32 lowercase letters" in said and "nor an operator id" in said


def test_the_cancel_survives_replay_history_and_verify(
    audited: tuple[Path, dict[str, str]],
) -> None:
    data_dir, rides = audited
    history = _replay("history", "ride", rides["dana"], "--json", "--data-dir", str(data_dir))
    last = json.loads(history.splitlines()[-1])
    assert last["type"] == "dispatch.Ride.CancelledByOperator"
    assert last["state"]["status"] == "cancelled"
    _replay("verify", "--data-dir", str(data_dir))  # exit code 0: no violation


def test_the_export_carries_the_cancel_matching_its_published_schema(
    audited: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    data_dir, _ = audited
    out = tmp_path / "events.jsonl"
    _replay("export", "--format", "jsonl", "--data-dir", str(data_dir), "-o", str(out))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record in records:
        validate_exported(record)
    cancels = [r for r in records if r["type"] == "dispatch.Ride.CancelledByOperator"]
    assert {r["data"]["operator_name"] for r in cancels} == {"dana", "ada"}
