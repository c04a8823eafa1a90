"""The idempotency window across checkpoints and restarts of the embedded engine.

Commands keyed with a UUIDv7 and with a plain key are handled, the engine writes
checkpoints and is restarted (restoring from its newest one); retries inside the window
get the first outcome, and after the window (another restart later) the UUIDv7 key is
refused while the plain key is handled as a new command. The log verifies clean.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from idempotency_keys import uuid7

from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.driver import DriverStatus
from dispatch.domain.ids import new_id
from dispatch.replay.operations import verify
from dispatch.settings import Settings
from dispatch.simulator.clock import SimClock
from schemas import commands as c

WINDOW = 3_600.0


class Engine:
    """One embedded engine on ``settings``' data dir; commands go through its transport."""

    def __init__(self, settings: Settings, clock: SimClock) -> None:
        self.clock = clock
        self.engine: EmbeddedEngine = build_embedded_engine(settings, clock)

    def send(self, command: c.Command, command_id: str | None = None) -> c.Outcome:
        envelope = c.CommandEnvelope(
            command_id=command_id or str(uuid.uuid4()),
            issued_at=datetime.fromtimestamp(self.clock.now, UTC),
            command=command,
        )
        self.engine.transport.send_command(envelope)
        self.clock.now += 1.0
        self.engine.run_once()
        outcome = self.engine.transport.wait_outcome(envelope.command_id, 0)
        assert outcome is not None
        return outcome

    def driver(self, driver_id: Any) -> Any:
        return self.engine.workers[0].app.repository.get(driver_id)

    def stop(self) -> None:
        self.engine.stop()
        for worker in self.engine.workers.values():
            worker.app.close()


def test_retries_inside_and_after_the_window_across_checkpoints_and_restarts(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, shards=1, idempotency_window_s=WINDOW,
                        checkpoint_every_events=6, checkpoint_chunk_rows=2)  # fmt: skip
    clock = SimClock()
    first = Engine(settings, clock)
    aged, plain = new_id(0), new_id(0)
    aged_key = f"{aged}:{uuid7(datetime.fromtimestamp(clock.now, UTC))}"
    plain_key = f"{plain}:go-online"
    for driver_id in (aged, plain):
        assert first.send(c.RegisterDriver(driver_id=driver_id, name="d")).accepted
    assert first.send(c.GoOnline(driver_id=aged), aged_key).accepted
    assert first.send(c.GoOnline(driver_id=plain), plain_key).accepted
    for _ in range(12):  # enough events for a checkpoint or two
        assert first.send(c.RegisterRider(rider_id=new_id(0), name="r")).accepted
    first.stop()

    inside = Engine(settings, clock)
    assert inside.engine.workers[0].restored_from is not None
    for driver_id, key in ((aged, aged_key), (plain, plain_key)):
        again = inside.send(c.GoOnline(driver_id=driver_id), key)
        assert again.accepted and again.duplicate
        assert inside.send(c.GoOffline(driver_id=driver_id)).accepted
    inside.stop()

    clock.now += WINDOW
    after = Engine(settings, clock)
    expired = after.send(c.GoOnline(driver_id=aged), aged_key)
    handled = after.send(c.GoOnline(driver_id=plain), plain_key)
    retried = after.send(c.GoOnline(driver_id=plain), plain_key)

    assert (expired.accepted, expired.code) == (False, "idempotency_key_expired")
    assert after.driver(aged).status == DriverStatus.OFFLINE
    assert handled.accepted and not handled.duplicate
    assert after.driver(plain).status == DriverStatus.AVAILABLE
    assert retried.accepted and retried.duplicate
    after.stop()
    events, violations = verify(SqliteLogSource(tmp_path))
    assert violations == [] and events > 0
