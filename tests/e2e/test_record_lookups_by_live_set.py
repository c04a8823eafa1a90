"""Command-record lookups skip the store for ids the shard's live aggregates do not hold.

A new command looks up three record ids, each a store read or two when missed; the worker's
live set (folded from the log, or restored from a checkpoint that lists it) answers the
misses. It must hold every record within the window, refusals included (no handler returns
their events), after a restart from a checkpoint as well as in the running engine.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from test_idempotency_window_restart import Engine

from dispatch.domain.ids import new_id
from dispatch.settings import Settings
from dispatch.simulator.clock import SimClock
from schemas import commands as c


def test_a_refused_command_and_an_accepted_one_are_answered_once_across_a_restart(
    tmp_path: Path,
) -> None:
    s = Settings(data_dir=tmp_path, shards=1, checkpoint_every_events=4, checkpoint_chunk_rows=2)
    clock = SimClock(1.7e9)
    engine = Engine(s, clock)
    driver = new_id(0)
    refused_id, accepted_id = str(uuid.uuid4()), str(uuid.uuid4())
    refused = engine.send(c.GoOnline(driver_id=new_id(0)), refused_id)  # unknown driver
    accepted = engine.send(c.RegisterDriver(driver_id=driver, name="d"), accepted_id)
    assert not refused.accepted and accepted.accepted
    worker = engine.engine.workers[0]
    assert worker.app.stored_ids is worker.live  # lookups trust the live set
    again = engine.send(c.GoOnline(driver_id=new_id(0)), refused_id)
    assert again.duplicate and again.code == refused.code
    for _ in range(12):  # enough events for a checkpoint that lists the live set
        engine.send(c.GoOnline(driver_id=driver))
        engine.send(c.GoOffline(driver_id=driver))
    engine.stop()

    engine = Engine(s, clock)
    worker = engine.engine.workers[0]
    assert worker.restored_from is not None and worker.app.stored_ids is worker.live
    for command_id, first in ((refused_id, refused), (accepted_id, accepted)):
        retry = engine.send(c.RegisterDriver(driver_id=driver, name="d"), command_id)
        assert retry.duplicate and (retry.accepted, retry.code) == (first.accepted, first.code)
    engine.stop()


def test_after_a_checkpoint_without_the_live_list_the_live_set_is_still_complete(
    tmp_path: Path,
) -> None:
    """Upgrading from checkpoints that do not list the live aggregates (format 1): the
    restore lists them from the log before the checkpoint, so lookups may trust the set and
    the next checkpoint lists every live record, and a retry after two restarts is answered
    from its record."""
    s = Settings(data_dir=tmp_path, shards=1, checkpoint_every_events=4, checkpoint_chunk_rows=2)
    clock = SimClock(1.7e9)
    engine = Engine(s, clock)
    old = engine.engine.workers[0]  # as the previous version ran: no live set, no list
    old.live, old.app.stored_ids = None, None
    assert old.checkpoints is not None
    old.checkpoints.aggregates = None
    driver, key = new_id(0), str(uuid.uuid4())
    first = engine.send(c.RegisterDriver(driver_id=driver, name="d"), key)
    for _ in range(8):
        engine.send(c.GoOnline(driver_id=driver))
        engine.send(c.GoOffline(driver_id=driver))
    assert old.checkpoints.written >= 1
    engine.stop()

    for _ in range(2):  # from the old checkpoint, then from one the new code wrote
        engine = Engine(s, clock)
        worker = engine.engine.workers[0]
        assert worker.restored_from is not None and worker.app.stored_ids is worker.live
        assert worker.live is not None and len(worker.live) > 1
        retry = engine.send(c.RegisterDriver(driver_id=driver, name="d"), key)
        assert retry.duplicate and (retry.accepted, retry.code) == (first.accepted, first.code)
        for _ in range(8):
            engine.send(c.GoOnline(driver_id=driver))
            engine.send(c.GoOffline(driver_id=driver))
        engine.stop()
