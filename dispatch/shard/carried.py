"""Command records that travel with a driver across a hand-off.

A driver's commands (``messages.FOLLOW_THE_DRIVER``) are handled by the shard that serves
the driver, which records each one's outcome (``CommandRecord``) and notes its id on the
driver (``Driver.CommandNoted``). A hand-off carries copies of the noted records that are
still live; the receiver writes them (``CommandRecord.Carried``, at its own record ids, with
their first time) in the transaction that starts the driver's tenure there. A retry of a
driver command sent after a hand-off therefore finds its first outcome wherever the driver
is served: it is never applied twice, nor answered differently.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.command_record import CarriedRecord, CommandRecord, record_ids
from dispatch.domain.driver import Driver, DriverStatus, live_commands
from dispatch.shard.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def records_to_carry(uow: UnitOfWork, driver: Driver, at: datetime) -> tuple[CarriedRecord, ...]:
    """Copies of the driver's command records at this shard that are live at ``at``."""
    out: list[CarriedRecord] = []
    for command_id, (when, window_s) in live_commands(driver, at.timestamp()).items():
        written = datetime.fromtimestamp(when, UTC)
        record_id = record_ids(uow.shard, command_id, written, window_s).current
        record = uow.find(CommandRecord, record_id)
        if record is None or record.command_id != command_id:
            log.error("driver %s: no record of its command %s at shard %s: not carried",
                      driver.id, command_id, uow.shard)  # fmt: skip
            continue
        out.append(record.copy())
    return tuple(out)


def keep_carried(
    uow: UnitOfWork,
    records: tuple[CarriedRecord, ...],
    from_shard: int,
    window_s: float,
    at: datetime,
) -> dict[str, list[float]]:
    """Write here the records a hand-off carried (one this shard already holds stays as it
    is); returns the driver's noted commands to start its tenure with. ``window_s``: the
    window of a record that carries none; ``at``: this shard's clock.

    A record is kept at its first time, or at this shard's time if that is earlier (a
    clock behind the sender's): a lookup here looks in the current and previous periods by
    this clock, so a record must never sit in a period this clock has not reached; kept
    earlier, it answers a little longer, never shorter. A record that cannot be kept (a
    time or window out of range) is left out and logged: the driver still arrives."""
    commands: dict[str, list[float]] = {}
    now = at.timestamp()
    for record in records:
        window = record.window_s if record.window_s is not None else window_s
        try:
            if not window > 0:
                raise ValueError(f"window {window!r}")
            when = min(record.at, now)
            written = datetime.fromtimestamp(when, UTC)
        except (ValueError, OverflowError, OSError) as error:
            log.error("record of command %s carried from shard %s not kept: %s",
                      record.command_id, from_shard, error)  # fmt: skip
            continue
        record_id = record_ids(uow.shard, record.command_id, written, window).current
        if uow.find(Aggregate, record_id) is None:
            kept = replace(record, at=when, window_s=window)
            uow.add(CommandRecord.carry(record_id, kept, from_shard))
        commands[record.command_id] = [when, window]
    return commands


def note(uow: UnitOfWork, driver_id: UUID, command_id: str, window_s: float, at: datetime) -> None:
    """Note a driver command's id on the driver, if this shard serves it (its record is
    written in the same batch)."""
    driver = uow.find(Driver, driver_id)
    if driver is not None and driver.status != DriverStatus.HANDED_OFF:
        driver.note_command(command_id, window_s, at)
