"""An embedded shard makes the keys of a batch's new riders and drivers in one durable
write before sealing it (``Sealer.prepare``, ``KeyStore.create_ahead``), not one synced
commit each; what it seals then opens with those keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatch.adapters.sqlite.keystore import SqliteKeyStore
from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.domain.rider import Rider
from dispatch.settings import Settings
from schemas import commands as c

T0 = 1_767_600_000.0


def test_a_batch_of_registrations_makes_its_keys_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: dict[str, list[Any]] = {"create": [], "create_ahead": []}
    create, ahead = SqliteKeyStore.create, SqliteKeyStore.create_ahead

    def counted_create(self: SqliteKeyStore, subject: uuid.UUID) -> Any:
        calls["create"].append(subject)
        return create(self, subject)

    def counted_ahead(self: SqliteKeyStore, subjects: Any) -> Any:
        subjects = list(subjects)
        calls["create_ahead"].append(subjects)
        return ahead(self, subjects)

    monkeypatch.setattr(SqliteKeyStore, "create", counted_create)
    monkeypatch.setattr(SqliteKeyStore, "create_ahead", counted_ahead)
    engine = build_embedded_engine(Settings(data_dir=tmp_path, shards=1), lambda: T0)
    try:
        riders = [new_id(0) for _ in range(20)]
        for rider in riders:
            engine.transport.send_command(
                c.CommandEnvelope(
                    command_id=str(uuid.uuid4()),
                    issued_at=datetime.fromtimestamp(T0, UTC),
                    command=c.RegisterRider(rider_id=rider, name=f"rider {rider}"),
                )
            )
        (report,) = engine.run_once()
        assert len(report.outcomes) == 20 and all(o.accepted for o in report.outcomes)
        assert calls["create"] == []  # none made one by one
        assert [set(made) for made in calls["create_ahead"]] == [set(riders)]
        stored = engine.workers[0].app.repository.event_store  # read back and opened
        (registered,) = list(stored.get(riders[0]))
        assert isinstance(registered, Rider.Created)
        assert registered.name == f"rider {riders[0]}"
    finally:
        engine.stop()
