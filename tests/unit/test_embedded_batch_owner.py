"""The embedded engine owns each batch: a batch the store could not save is dropped, its
commands are answered ``unavailable`` (nothing recorded: a retry is safe), the shard is
refolded, and the next batch goes through."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.settings import Settings
from schemas import commands as c

T0 = 1_767_600_000.0


def register(driver_id: Any, command_id: str) -> c.CommandEnvelope:
    return c.CommandEnvelope(
        command_id=command_id,
        issued_at=datetime.fromtimestamp(T0, UTC),
        command=c.RegisterDriver(driver_id=driver_id, name="Dee"),
    )


def test_a_batch_the_store_cannot_save_is_answered_unavailable_and_the_next_goes_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=1), lambda: T0)
    worker = engine.workers[0]
    save = worker.app.commit

    def broken() -> Any:
        worker.app.discard()
        raise OSError("disk full")

    monkeypatch.setattr(worker.app, "commit", broken)
    engine.transport.send_command(register(new_id(0), "first"))
    (report,) = engine.run_once()
    (outcome,) = report.outcomes
    assert (outcome.accepted, outcome.code) == (False, "unavailable")
    assert engine.transport.wait_outcome("first", 0) == outcome
    assert worker.app.position() == 0, "nothing was recorded"

    monkeypatch.setattr(worker.app, "commit", save)
    engine.transport.send_command(register(new_id(0), "first"))  # the client's retry
    (again,) = engine.run_once()
    assert again.outcomes[0].accepted and not again.outcomes[0].duplicate
    assert worker.app.position() == 2  # the driver's registration and its command record
