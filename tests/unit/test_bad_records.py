"""Records no decoder can use become dead letters with a reason, never a crash or a stall."""

from __future__ import annotations

from pathlib import Path

import orjson

from dispatch.adapters.kafka import wire
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.messages import MAX_PING_AHEAD_S, Ping
from dispatch.settings import Settings

T0 = 1_767_600_000.0


def test_a_record_without_a_value_is_poison_that_can_be_dead_lettered() -> None:
    command = wire.decode_command(None, "commands[0]@7")
    pings, bad = wire.decode_pings(None, "locations[0]@8")
    assert not isinstance(command, Ping) and not pings
    for poison in (command, *bad):
        assert poison.reason == "empty record (no value)"  # type: ignore[union-attr]
        letter = orjson.loads(wire.encode_dead_letter(poison))  # type: ignore[arg-type]
        assert letter["raw"] == "" and letter["reason"] == "empty record (no value)"


def test_a_ping_timed_too_far_ahead_of_the_shard_clock_is_dead_lettered(tmp_path: Path) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=1), lambda: T0)
    worker = engine.workers[0]
    driver = new_id(0)  # the engine's one shard
    ahead = Ping(driver, 37.77, -122.42, T0 + MAX_PING_AHEAD_S + 1.0)
    fine = Ping(new_id(0), 37.77, -122.42, T0)
    engine.transport.send_pings([ahead, fine])
    (report,) = engine.run_once()
    assert report.pings == 2 and worker.matcher.positions.keys() == {fine.driver_id}
    (letter,) = engine.transport.dead_letters  # type: ignore[attr-defined]
    assert letter.source == "locations" and "ahead of" in letter.reason
    assert orjson.loads(letter.raw) == [str(driver), 37.77, -122.42, ahead.at]
