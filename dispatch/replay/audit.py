"""The audit trail, read from the log of record: every event that names the operator who
caused it (``AUDIT_FIELDS``), oldest first. It is the same log embedded and on Kafka, so
the trail is as durable as the changes it records and needs no store of its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from dispatch.domain.operators import AUDIT_FIELDS, operator_id, operator_name_error
from dispatch.log import LogEvent, LogSource
from dispatch.replay.operations import read_all

_ID, _NAME, _ROLE = AUDIT_FIELDS


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One operator action: when, where in the log, what, on which aggregate, by whom (and
    in which operator role)."""

    at: float
    where: str
    kind: str
    aggregate_id: str
    operator_id: str
    operator_name: str
    operator_role: str
    details: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "position": self.where,
            "type": self.kind,
            "aggregate_id": self.aggregate_id,
            "operator_id": self.operator_id,
            "operator_name": self.operator_name,
            "operator_role": self.operator_role,
            "details": self.details,
        }


def operator_filter(text: str) -> str:
    """The operator id an ``--operator`` value (a name or an id) stands for; ``ValueError``
    if it is neither. Only a UUID in its canonical form (dashed, lowercase: how the log
    writes one) is an id; anything else is a name, so a name that ``UUID()`` would also
    take (32 hex digits) is the operator of that name."""
    if _is_canonical_uuid(text):
        return text
    problem = operator_name_error(text)
    if problem is not None:
        raise ValueError(f"{problem}, nor an operator id")
    return str(operator_id(text))


def _is_canonical_uuid(text: str) -> bool:
    try:
        return str(UUID(text)) == text
    except ValueError:
        return False


def audit_trail(
    source: LogSource, operator: str | None = None, shard: int | None = None
) -> Iterator[AuditRecord]:
    """Every operator action in the log (of ``shard``, or all), by the operator with the id
    ``operator`` (or anyone), in time order across shards."""
    found = [
        e
        for e in read_all(source, shard)
        if _ID in e.data and (operator is None or e.data[_ID] == operator)
    ]
    found.sort(key=lambda e: (e.at, e.shard, e.position))  # positions as numbers
    return (_record(e) for e in found)


def _record(e: LogEvent) -> AuditRecord:
    details = {k: v for k, v in e.data.items() if k not in AUDIT_FIELDS}
    who = (str(e.data[_ID]), str(e.data[_NAME]), str(e.data[_ROLE]))
    return AuditRecord(e.at, e.where, e.kind, e.aggregate_id, *who, details)
