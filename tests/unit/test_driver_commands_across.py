"""``replay verify``'s check of driver commands over all shards (``invariants_commands``):
a driver command handled at two shards within its window, and a carried record that no
shard wrote, are flagged; a carried copy of a record, a refusal as misrouted and a command
handled again once its window passed are not."""

from __future__ import annotations

from typing import Any

from dispatch.invariants_commands import CARRIED, HANDLED, DriverCommandsAcross
from dispatch.log import LogEvent

T0 = 1_767_600_000.0
WINDOW = 600.0


def _record(shard: int, at: float, topic: str = HANDLED, **data: Any) -> LogEvent:
    fields = {"command_id": "cmd-1", "command_type": "go_offline", "accepted": True,
              "code": "ok", "window_s": WINDOW} | data  # fmt: skip
    return LogEvent(shard, int(at - T0) + 1, "rec", 1, topic, at, fields)


def _kinds(*events: LogEvent) -> list[str]:
    check = DriverCommandsAcross()
    for e in events:
        check.check(e)
    return [v.kind for v in check.finish()]


def test_a_driver_command_handled_at_two_shards_within_its_window_is_flagged() -> None:
    assert _kinds(_record(1, T0 + 30), _record(0, T0)) == ["duplicate_outcome_across"]


def test_a_carried_copy_of_a_record_is_not_a_second_outcome() -> None:
    assert _kinds(_record(1, T0 + 30, CARRIED), _record(0, T0)) == []


def test_a_carried_record_no_shard_wrote_is_flagged() -> None:
    assert _kinds(_record(1, T0 + 30, CARRIED)) == ["carried_record_unknown"]


def test_a_carried_record_with_another_outcome_than_the_one_written_is_flagged() -> None:
    copy = _record(1, T0 + 30, CARRIED, accepted=False, code="illegal_transition")
    assert _kinds(copy, _record(0, T0)) == ["carried_record_unknown"]


def test_a_misrouted_refusal_and_a_repeat_after_the_window_are_not_flagged() -> None:
    misrouted = _record(1, T0, accepted=False, code="misrouted")
    assert _kinds(misrouted, _record(0, T0 + 1)) == []
    assert _kinds(_record(0, T0), _record(1, T0 + WINDOW + 1)) == []


def test_commands_of_other_kinds_are_left_to_each_shards_own_check() -> None:
    assert _kinds(_record(0, T0, command_type="cancel_ride"),
                  _record(1, T0, command_type="cancel_ride")) == []  # fmt: skip
