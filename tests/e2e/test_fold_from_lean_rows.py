"""A Kafka worker folds its tail from the local table's lean rows (``RowLog``) instead of the
library's notifications: the same events, read the same way, give the same state. The log
of a simulated city on SQLite is copied row for row into the Kafka store's table, and a
worker over each folds the same ranges (no broker needed)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from test_checkpoint_restore import simulate

from dispatch.adapters.kafka.eventstore.codec import DecodedEvent
from dispatch.adapters.kafka.eventstore.store import EventTable
from dispatch.bootstrap import build_worker
from dispatch.matching.state import capture
from dispatch.shard.worker import RowLog, ShardWorker


class TableLog:
    """The Kafka store's table as a worker's recorder reads it when it folds (``RowLog``)."""

    def __init__(self, table: EventTable) -> None:
        self.table = table

    def select_rows(self, start: int, limit: int, stop: int | None = None) -> Any:
        return self.table.select_rows(start, limit, stop)

    def row_state(self, row: int) -> bytes:
        return self.table.row_state(row)

    def row_notification(self, row: int) -> Any:
        return self.table.row_notification(row)


def _state(worker: ShardWorker) -> tuple[str, float | None, str]:
    live = worker.live
    return (
        repr(capture(worker.matcher)),
        worker.last_event_time,
        repr(sorted(map(repr, vars(live).items()))) if live is not None else "",
    )


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, EventTable, int]:
    settings = simulate(tmp_path_factory.mktemp("log"), checkpoint_every_events=0)
    reference = build_worker(settings, 0, lambda: 0.0)
    notes = reference.app.recorder.select_notifications(1, 10**9)
    assert len({n.topic for n in notes}) > 10
    table = EventTable(monotonic=True)
    for n in notes:
        table.load_record(n.id, [DecodedEvent(
            str(n.originator_id), isinstance(n.originator_id, UUID), n.originator_version,
            n.topic, bytes(n.state),
        )])  # fmt: skip
    reference.app.close()
    return settings, table, len(notes)


@pytest.mark.parametrize("part", ["all", "first half", "from a third", "a middle stretch"])
def test_folding_lean_rows_gives_the_state_folding_notifications_gives(
    logged: tuple[Any, EventTable, int], part: str
) -> None:
    settings, table, end = logged
    start, stop = {"all": (1, None), "first half": (1, end // 2),
                   "from a third": (end // 3, None),
                   "a middle stretch": (end // 2 + 1, end - 7)}[part]  # fmt: skip
    by_notifications = build_worker(settings, 0, lambda: 0.0)
    by_rows = build_worker(settings, 0, lambda: 0.0)
    by_rows.app.recorder = TableLog(table)  # type: ignore[assignment]
    assert isinstance(by_rows.app.recorder, RowLog)
    assert not isinstance(by_notifications.app.recorder, RowLog)

    read = by_notifications.fold(start, stop)
    assert by_rows.fold(start, stop) == read > 0
    assert _state(by_rows) == _state(by_notifications)
