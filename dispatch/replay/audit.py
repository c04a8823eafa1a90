"""The audit trail, read from the log of record: every event that names the operator who
caused it (``AUDIT_FIELDS``), oldest first. It is the same log embedded and on Kafka, so
the trail of changes is as durable as the changes it records and needs no store of its
own. Operators' reads change nothing and are kept apart (``dispatch.read_audit``);
``with_reads`` merges them into the trail."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from dispatch.domain.operators import AUDIT_FIELDS, operator_id, operator_name_error
from dispatch.log import LogEvent, LogSource
from dispatch.read_audit import ReadRecord
from dispatch.replay.operations import read_all

_ID, _NAME, _ROLE = AUDIT_FIELDS
READ_KIND = "OperatorRead"  # the ``type`` of a read in the trail


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
            "position": self.where or None,  # a read has no place in the log
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
        if e.data.get(_ID) and (operator is None or e.data[_ID] == operator)
    ]
    found.sort(key=lambda e: (e.at, e.shard, e.position))  # positions as numbers
    return (_record(e) for e in found)


def _record(e: LogEvent) -> AuditRecord:
    details = {k: v for k, v in e.data.items() if k not in AUDIT_FIELDS}
    # an event written before its kind named all three (an admin's erasure of class
    # version 1 named the id only) shows the others empty
    who = (str(e.data.get(_ID, "")), str(e.data.get(_NAME, "")), str(e.data.get(_ROLE, "")))
    return AuditRecord(e.at, e.where, e.kind, e.aggregate_id, *who, details)


def with_reads(
    changes: Iterable[AuditRecord], reads: Iterable[ReadRecord], operator: str | None = None
) -> Iterator[AuditRecord]:
    """The trail of ``changes`` (in time order) with the operators' ``reads`` (of
    ``operator``, or anyone) merged in by time; a read's ``aggregate_id`` is the ride or
    driver its path names (empty for a read of no one aggregate, such as the heatmap) and
    its details the route, the path and query parameters and the request id."""
    kept = sorted(
        (r for r in reads if operator is None or r.operator_id == operator), key=lambda r: r.at
    )
    return heapq.merge(changes, (_read(r) for r in kept), key=lambda a: a.at)


def _read(r: ReadRecord) -> AuditRecord:
    details = {
        "route": r.route,
        "path": dict(r.path),
        "query": dict(r.query),
        "omitted": r.omitted,
        "request_id": r.request_id,
    }
    return AuditRecord(
        r.at, "", READ_KIND, r.about, r.operator_id, r.operator_name, r.operator_role, details
    )
