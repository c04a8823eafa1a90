"""The outcome of every client command, kept in the log beside the events it caused.

One record per command id makes commands idempotent across restarts: a repeated command
finds its record and gets the first outcome back. It also lets ``replay verify`` prove
that every command id has exactly one outcome.

A record keeps the request fingerprint its command came with (the API's hash of route,
caller and body; empty for commands sent without one), so a command id reused for a
different request is told apart from a retry, after restarts and across API processes.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate


class CommandRecord(Aggregate):
    TOPIC = "dispatch.CommandRecord"

    class Created(Aggregate.Created):
        """Stored as ``Handled`` (see TOPIC)."""

        TOPIC = "dispatch.CommandRecord.Handled"
        class_version = 2
        command_id: str
        command_type: str
        accepted: bool
        code: str
        reason: str
        aggregate_ids: list[str]
        fingerprint: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            """Version 1 kept no fingerprint: such a record matches no fingerprinted retry."""
            state["fingerprint"] = ""

    def __init__(
        self,
        command_id: str,
        command_type: str,
        accepted: bool,
        code: str,
        reason: str,
        aggregate_ids: list[str],
        fingerprint: str,
    ) -> None:
        self.command_id = command_id
        self.command_type = command_type
        self.accepted = accepted
        self.code = code
        self.reason = reason
        self.aggregate_ids = aggregate_ids
        self.fingerprint = fingerprint

    def answers(self, fingerprint: str | None) -> bool:
        """Whether a repeat of this command id carrying ``fingerprint`` is a retry of the
        recorded command (a command without a fingerprint is trusted by its id alone)."""
        return fingerprint is None or fingerprint == self.fingerprint

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
        )
