"""The outcome of every client command, kept in the log beside the events it caused.

A command record makes its command idempotent: while the record is *live* (younger than
the idempotency window, 24 h by default) a repeated command id finds it and gets the
first outcome back. It also lets ``replay verify`` prove that every command id has one
outcome within the window. Each record carries the window in force when it was written
(``window_s``; records from before the window was recorded carry none).

A record keeps the request fingerprint its command came with (the API's hash of route,
caller and body; empty for commands sent without one), so a command id reused for a
different request is told apart from a retry, after restarts and across API processes.

Record ids. A command id may be handled again once its record left the window, and the
log must never hold two creations of one aggregate id, so a record's id names the window
and the *period* it was written in (``floor(time / window)``): ``record_ids`` gives the
current period's id, where a new record goes, and the two where a live record can be (the
current and the previous period; records written before periods existed sit at the plain
command id's derived id, and count while they are within the window too). Any record in
the current period is live, so a new record never lands on a taken id.

Records that travel with a driver. A driver's commands (going online or offline, accepting
an offer) are handled by the shard that serves the driver, and a driver handed off to
another shard takes the live records of its commands with it (``Carried``: a copy, at the
receiving shard, of a record written elsewhere, with its first time and window), so that a
retry sent after the hand-off finds its first outcome where the driver now is.

Keys that show their age. A command id whose key (the text after its last ``:``, or the
whole id) is a UUIDv7 carries the time it was made: once that is older than the window
(less the clock skew allowed), a repeat that finds no live record is refused
(``idempotency_key_expired``) instead of being handled again; a key dated more than the
skew ahead of the shard's clock is refused too (``idempotency_key_invalid``), as its
record would leave the window before the key did. Any other key cannot be aged: once its
record has left the window, a repeat is handled as a new command.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from uuid import UUID

from eventsourcing.domain import Aggregate

from dispatch.domain.ids import derived_id

DEFAULT_WINDOW_S = 86_400.0
MAX_KEY_SKEW_S = 60.0  # how far a UUIDv7 key's clock may run ahead of the shard's
# Record ids: the plain command id (records written before the window) and, from then on,
# window + period + command id.
COMMAND_NAMESPACE = UUID("6f1f8a52-3f7c-4d7e-9b7a-1c1d6c0f5e11")
PERIOD_NAMESPACE = UUID("0d3c4f61-95a2-4b7e-8e0f-2a6f3b9d7c45")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _US


def _window_us(window_s: float) -> int:
    return max(1, round(window_s * 1_000_000))


def record_is_live(recorded_at: datetime, now: datetime, window_s: float) -> bool:
    """Whether a command record written at ``recorded_at`` still answers for its command id
    at ``now``: it is younger than ``window_s`` (one from a clock that ran ahead counts)."""
    return _micros(now) - _micros(recorded_at) < _window_us(window_s)


class RecordIds(NamedTuple):
    current: UUID  # where a record written now goes
    previous: UUID  # the previous period's
    legacy: UUID  # where records written before periods existed are


def record_ids(shard: int, command_id: str, now: datetime, window_s: float) -> RecordIds:
    """The ids a live record of ``command_id`` can have at ``now``, the current one first."""
    window_us = _window_us(window_s)
    period = _micros(now) // window_us

    def at(p: int) -> UUID:
        return derived_id(shard, PERIOD_NAMESPACE, f"{window_us}:{p}:{command_id}")

    return RecordIds(at(period), at(period - 1), derived_id(shard, COMMAND_NAMESPACE, command_id))


def key_time(command_id: str) -> datetime | None:
    """When the command id's key was made, if the key (the text after the id's last ``:``,
    or the whole id) is a UUIDv7 in canonical form; None for any other key."""
    key = command_id.rpartition(":")[2]
    try:
        parsed = UUID(key)
    except ValueError:
        return None
    if parsed.version != 7 or str(parsed) != key.lower():
        return None
    return _EPOCH + timedelta(milliseconds=parsed.int >> 80)


def key_skew_s(window_s: float) -> float:
    """The skew allowed between a key's clock and the shard's (a quarter of a short window)."""
    return min(MAX_KEY_SKEW_S, window_s / 4)


def key_refusal(command_id: str, now: datetime, window_s: float) -> tuple[str, str] | None:
    """Code and reason refusing a command whose UUIDv7 key is too old or too far ahead to
    be checked against its record (a key whose record has surely left the window), or None.

    A key older than the window less the skew: its command, if it was handled, was handled
    at most the skew before the key's time, so its record is no longer live."""
    made = key_time(command_id)
    if made is None:
        return None
    age = (now - made).total_seconds()
    skew = key_skew_s(window_s)
    if age < -skew:
        return "idempotency_key_invalid", (
            f"the Idempotency-Key is a UUIDv7 made {-age:.0f} s ahead of the engine's clock "
            f"(at most {skew:g} s allowed): make keys with a clock that is right"
        )
    if age >= window_s - skew:
        return "idempotency_key_expired", (
            f"the Idempotency-Key is a UUIDv7 made {age:.0f} s ago, outside the "
            f"{window_s:g} s idempotency window: its outcome is no longer kept; send the "
            "request again with a new key if it is still wanted"
        )
    return None


class CommandRecord(Aggregate):
    TOPIC = "dispatch.CommandRecord"

    class Created(Aggregate.Created):
        """Stored as ``Handled`` (see TOPIC)."""

        TOPIC = "dispatch.CommandRecord.Handled"
        class_version = 3
        command_id: str
        command_type: str
        accepted: bool
        code: str
        reason: str
        aggregate_ids: list[str]
        fingerprint: str
        window_s: float | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            """Version 1 kept no fingerprint: such a record matches no fingerprinted retry."""
            state["fingerprint"] = ""

        @staticmethod
        def upcast_v2_v3(state: dict[str, object]) -> None:
            """Version 2 kept no window: unknown (``replay verify`` holds such a record to
            the window of a later record of its command id, or to forever)."""
            state["window_s"] = None

    class Carried(Created):
        """A copy of a driver command's record, written at the shard the driver was handed
        to (``from_shard`` handed it off): the same outcome, at its first time."""

        TOPIC = "dispatch.CommandRecord.Carried"
        class_version = 1
        from_shard: int

    def __init__(
        self,
        command_id: str,
        command_type: str,
        accepted: bool,
        code: str,
        reason: str,
        aggregate_ids: list[str],
        fingerprint: str,
        window_s: float | None,
        from_shard: int | None = None,
    ) -> None:
        self.from_shard = from_shard  # the shard a carried record came from (None: here)
        self.command_id = command_id
        self.command_type = command_type
        self.accepted = accepted
        self.code = code
        self.reason = reason
        self.aggregate_ids = aggregate_ids
        self.fingerprint = fingerprint
        self.window_s = window_s

    def answers(self, fingerprint: str | None, alternates: tuple[str, ...] = ()) -> bool:
        """Whether a repeat of this command id carrying ``fingerprint`` is a retry of the
        recorded command (a command without a fingerprint is trusted by its id alone). The
        record may hold another fingerprint of the same request (``alternates``: under a
        key the API has since rotated, or the unkeyed one of before keyed fingerprints)."""
        if fingerprint is None:
            return True
        return bool(self.fingerprint) and self.fingerprint in (fingerprint, *alternates)

    def live_at(self, now: datetime, window_s: float) -> bool:
        """Whether this record still answers at ``now``: within its own window, or within
        ``window_s`` (the one in force) if it was written before windows were recorded."""
        window = self.window_s if self.window_s is not None else window_s
        return record_is_live(self.created_on, now, window)

    @classmethod
    def record(
        cls,
        record_id: UUID,
        command_id: str,
        command_type: str,
        at: datetime,
        *,
        accepted: bool,
        code: str = "ok",
        reason: str = "",
        aggregate_ids: list[str] | None = None,
        fingerprint: str | None = None,
        window_s: float | None = None,
    ) -> CommandRecord:
        return cls._create(
            cls.Created,
            id=record_id,
            timestamp=at,
            command_id=command_id,
            command_type=command_type,
            accepted=accepted,
            code=code,
            reason=reason,
            aggregate_ids=aggregate_ids or [],
            fingerprint=fingerprint or "",
            window_s=window_s,
        )

    @classmethod
    def carry(cls, record_id: UUID, copy: CarriedRecord, from_shard: int) -> CommandRecord:
        """The copy, at this shard, of a record ``from_shard`` wrote (or carried)."""
        fields = asdict(copy)
        at = fields.pop("at")
        fields["aggregate_ids"] = list(copy.aggregate_ids)
        when = datetime.fromtimestamp(at, UTC)
        return cls._create(cls.Carried, id=record_id, timestamp=when, from_shard=from_shard,
                           **fields)  # fmt: skip

    def copy(self) -> CarriedRecord:
        """What a hand-off message carries of this record."""
        return CarriedRecord(
            command_id=self.command_id,
            command_type=self.command_type,
            accepted=self.accepted,
            code=self.code,
            reason=self.reason,
            aggregate_ids=tuple(self.aggregate_ids),
            fingerprint=self.fingerprint,
            window_s=self.window_s,
            at=self.created_on.timestamp(),
        )


@dataclass(frozen=True, slots=True)
class CarriedRecord:
    """A command record as a hand-off carries it (``at``: when it was first written, POSIX
    seconds on the writing shard's clock)."""

    command_id: str
    command_type: str
    accepted: bool
    code: str
    reason: str
    aggregate_ids: tuple[str, ...]
    fingerprint: str
    window_s: float | None
    at: float

    @classmethod
    def from_data(cls, data: dict[str, object]) -> CarriedRecord:
        ids = data["aggregate_ids"]
        assert isinstance(ids, list | tuple)
        return cls(**{**data, "aggregate_ids": tuple(str(i) for i in ids)})  # type: ignore[arg-type]
