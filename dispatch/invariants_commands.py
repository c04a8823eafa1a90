"""The check ``replay verify`` makes of driver commands over all shards together.

A driver's commands (going online or offline, accepting an offer) follow the driver to the
shard that serves it, and a hand-off carries their live records (``CommandRecord.Carried``).
Fed every command record of every shard (in any order between shards), ``finish`` flags:

- ``duplicate_outcome_across``: two shards each handled one driver command id within the
  window of the first (a retry after a hand-off applied again);
- ``carried_record_unknown``: a shard holds a carried record that no shard wrote, or that
  says another outcome than the one written.

Refusals as ``misrouted`` are left out: a command addressed to a shard that does not serve
its target is refused there and handled where it belongs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from dispatch.domain.command_record import CommandRecord
from dispatch.invariants import Violation
from dispatch.log import LogEvent

HANDLED, CARRIED = CommandRecord.Created.TOPIC, CommandRecord.Carried.TOPIC
DRIVER_COMMANDS = frozenset({"go_online", "go_offline", "accept_offer"})


@dataclass(frozen=True, slots=True)
class _Record:
    shard: int
    where: str
    at: float
    window_s: float | None
    outcome: tuple[bool, str]  # accepted, code


@dataclass
class DriverCommandsAcross:
    violations: list[Violation] = field(default_factory=list)
    handled: dict[str, list[_Record]] = field(default_factory=dict)
    carried: dict[str, list[_Record]] = field(default_factory=dict)

    def check(self, e: LogEvent) -> None:
        if e.topic not in (HANDLED, CARRIED) or e.data["command_type"] not in DRIVER_COMMANDS:
            return
        if e.data["code"] == "misrouted":
            return
        seen = _Record(e.shard, e.where, e.at, e.data.get("window_s"),
                       (bool(e.data["accepted"]), str(e.data["code"])))  # fmt: skip
        kept = self.handled if e.topic == HANDLED else self.carried
        kept.setdefault(e.data["command_id"], []).append(seen)

    def finish(self) -> list[Violation]:
        for command_id, records in self.handled.items():
            ordered = sorted(records, key=lambda r: r.at)
            for first, later in pairwise(ordered):
                window = first.window_s if first.window_s is not None else later.window_s
                if first.shard != later.shard and (window is None or later.at - first.at < window):
                    self._flag(later, command_id, "duplicate_outcome_across",
                               f"command {command_id} was handled at {first.where} and again at "
                               f"{later.where}, {later.at - first.at:.0f} s later")  # fmt: skip
        for command_id, copies in self.carried.items():
            outcomes = {r.outcome for r in self.handled.get(command_id, [])}
            for copy in copies:
                if copy.outcome not in outcomes:
                    self._flag(copy, command_id, "carried_record_unknown",
                               f"a carried record of command {command_id} says {copy.outcome}, "
                               "which no shard recorded")  # fmt: skip
        return self.violations

    def _flag(self, record: _Record, command_id: str, kind: str, detail: str) -> None:
        self.violations.append(Violation(record.where, command_id, kind, detail))
