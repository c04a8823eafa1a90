"""What reaches the log: a command the API can refuse from what it knows (a caller without
rights, an id of a shard that does not exist) leaves no record; a command the shard
refuses (an unknown aggregate, an illegal transition) keeps its one durable outcome."""

from __future__ import annotations

from uuid import UUID

import pytest
from api_world import World
from test_authorization import MATRIX, Row, _call
from test_authorization import open_ride as open_ride  # the matrix's {open_ride}

from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.domain.ids import new_id, shard_of
from dispatch.replay.operations import verify

WRITES = [row for row in MATRIX if row.method == "POST"]


def heads(world: World) -> list[int | None]:
    runtime = world.client.app.state.ctx.runtime  # type: ignore[attr-defined]
    return [runtime.head(shard) for shard in range(runtime.settings.shards)]


@pytest.mark.parametrize("row", WRITES, ids=lambda r: f"{r.method} {r.path}")
def test_a_write_by_a_caller_without_rights_leaves_no_record(world: World, row: Row) -> None:
    before = heads(world)
    for wrong in row.wrong:
        assert _call(world, row, world.tokens[wrong]).status_code == 403
    assert heads(world) == before


def test_an_id_of_a_shard_that_does_not_exist_is_404_with_no_record(world: World) -> None:
    before = heads(world)
    ride = new_id(3_000)  # the world has 2 shards
    for action in ("accept", "decline", "arrived", "start", "complete"):
        r = world.client.post(f"/rides/{ride}/{action}", headers=world.tokens["driver_b"])
        assert r.status_code == 404, r.text
    assert (
        world.client.post(f"/rides/{ride}/cancel", headers=world.tokens["rider_s"]).status_code
        == 404
    )
    assert heads(world) == before


def test_an_unknown_ride_the_shard_refuses_keeps_one_durable_outcome(world: World) -> None:
    runtime = world.client.app.state.ctx.runtime  # type: ignore[attr-defined]
    ride = new_id(shard_of(UUID(world.ids["rider_s"])))  # in the rider's shard, unknown
    before = heads(world)

    r = world.client.post(f"/rides/{ride}/cancel", headers=world.tokens["rider_s"])

    assert r.status_code == 404
    after = heads(world)
    assert sum((a or 0) - (b or 0) for a, b in zip(after, before, strict=True)) == 1
    _, violations = verify(SqliteLogSource(runtime.settings.data_dir))
    assert violations == []  # among them: one outcome per recorded command


def test_an_unknown_ride_of_another_market_is_refused_there_and_decided_again_on_retry(
    world: World,
) -> None:
    """A rider's ride lives in its pickup's shard, in any market: neither the API nor that
    shard can tell an unknown ride from the rider's own ride still opening there, so the
    404 is not recorded as the command's outcome (a retry is decided again)."""
    runtime = world.client.app.state.ctx.runtime  # type: ignore[attr-defined]
    rider_shard = shard_of(UUID(world.ids["rider_s"]))
    ride = new_id(1 - rider_shard)  # the world has 2 shards
    before = heads(world)

    r = world.client.post(f"/rides/{ride}/cancel", headers=world.tokens["rider_s"])

    assert r.status_code == 404, r.text
    assert heads(world) == before
    _, violations = verify(SqliteLogSource(runtime.settings.data_dir))
    assert violations == []
