"""`replay verify` holds every command id to one outcome within its idempotency window."""

from __future__ import annotations

from test_verify_finds_violations import T0, CraftedLog, kinds

from dispatch.domain.ids import new_id
from dispatch.replay.operations import verify

DAY = 86_400.0


def record(log: CraftedLog, at: float, window_s: float | None) -> CraftedLog:
    data = {"window_s": window_s} if window_s is not None else {}
    return log.add(new_id(0), "CommandRecord.Handled", at=at, command_id="c-1",
                   command_type="go_online", accepted=True, code="ok", reason="",
                   aggregate_ids=[], **data)  # fmt: skip


def test_two_outcomes_of_one_command_within_the_window_are_flagged() -> None:
    log = record(record(CraftedLog(), T0, DAY), T0 + DAY - 1, DAY)

    (violation,) = verify(log)[1]

    assert violation.kind == "duplicate_outcome" and violation.position == "0:2"
    assert "already had an outcome at 0:1, 86399 s before, in a 86400 s window" in (
        violation.detail
    )


def test_a_second_outcome_once_the_first_left_its_window_is_not_a_violation() -> None:
    log = record(record(CraftedLog(), T0, DAY), T0 + DAY, DAY)
    assert kinds(log) == []


def test_each_outcome_is_held_to_the_window_it_was_recorded_with() -> None:
    # A third outcome an hour after the second: within the second's window.
    log = record(record(record(CraftedLog(), T0, 60.0), T0 + 120, DAY), T0 + 3_720, DAY)
    assert kinds(log) == ["duplicate_outcome"]


def test_records_without_a_window_keep_one_outcome_per_command_forever() -> None:
    log = record(record(CraftedLog(), T0, None), T0 + 400 * DAY, None)
    assert kinds(log) == ["duplicate_outcome"]


def test_a_record_without_a_window_is_held_to_the_window_of_the_one_after_it() -> None:
    after = record(record(CraftedLog(), T0, None), T0 + DAY, DAY)
    inside = record(record(CraftedLog(), T0, None), T0 + DAY - 1, DAY)
    assert kinds(after) == [] and kinds(inside) == ["duplicate_outcome"]
