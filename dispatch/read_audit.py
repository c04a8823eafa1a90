"""What operators read: one record per operator read, kept before the answer is sent.

Changes are audited in the log of record (``dispatch.replay.audit``: every event that names
the operator who caused it). A read changes no aggregate, so it has no event; it is
recorded here instead, by the API that answers it, before it answers: a read that could
not be recorded is refused (``ReadAuditUnavailable``, a 503), so no operator sees a ride,
a driver or a stream that the trail does not show they asked for.

``ReadAudit`` is the port: the embedded adapter keeps the records in a SQLite file under
the data dir (``dispatch.adapters.sqlite.readaudit``), the Kafka adapter in the
``<prefix>.operator-reads`` topic (``dispatch.adapters.kafka.readaudit``), written with
``acks=all`` like the log. ``dispatch replay audit --reads`` lists them with the changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# What a record keeps of a query string: the route's own parameters always, others (which
# the route ignores) up to ``MAX_PARAMS`` in all; each value cut to ``MAX_PARAM_CHARS``.
MAX_PARAM_CHARS = 200
MAX_PARAMS = 16


class ReadAuditUnavailable(Exception):
    """The record could not be kept (the store failed or did not confirm in time)."""


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One operator read: when (``at``, the API's clock), who (id, name and operator role),
    what (``route``: the method and path template, e.g. ``GET /rides/{ride_id}``; ``path``:
    the path's parameters, ids in their canonical form; ``query``: the query string's, the
    route's own first; ``omitted``: how many other query parameters were not kept) and the
    request's own id."""

    at: float
    operator_id: str
    operator_name: str
    operator_role: str
    route: str
    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""
    omitted: int = 0

    @property
    def about(self) -> str:
        """The ride or driver read (from the path only), or "" for a read of none."""
        return self.path.get("ride_id") or self.path.get("driver_id") or ""

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "operator_id": self.operator_id,
            "operator_name": self.operator_name,
            "operator_role": self.operator_role,
            "route": self.route,
            "path": dict(self.path),
            "query": dict(self.query),
            "omitted": self.omitted,
            "request_id": self.request_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReadRecord:
        """A record as ``as_json`` wrote it; ``ValueError`` naming what is missing or wrong."""
        try:
            path, query, omitted = data["path"], data["query"], data.get("omitted", 0)
            if not isinstance(path, Mapping) or not isinstance(query, Mapping):
                raise ValueError("path or query is not an object")
            at = data["at"]
            if isinstance(at, bool) or not isinstance(at, int | float):
                raise ValueError("at is not a number")
            if type(omitted) is not int:
                raise ValueError("omitted is not a whole number")
            who, name, role, route = (
                data[k] for k in ("operator_id", "operator_name", "operator_role", "route")
            )
            if not all(isinstance(t, str) for t in (who, name, role, route)):
                raise ValueError("an operator field or the route is not a string")
            return cls(
                float(at),
                who,
                name,
                role,
                route,
                {str(k): str(v) for k, v in path.items()},
                {str(k): str(v) for k, v in query.items()},
                str(data.get("request_id", "")),
                omitted,
            )
        except KeyError as missing:
            raise ValueError(f"a read record without {missing}") from None


def canonical_path(params: Mapping[str, str]) -> dict[str, str]:
    """Path parameters as the route reads them: a UUID in its canonical form (an id sent in
    capitals or without dashes names the same ride), anything else as sent, cut short."""
    out: dict[str, str] = {}
    for key, value in params.items():
        try:
            out[key] = str(uuid.UUID(value))
        except ValueError:
            out[key] = value[:MAX_PARAM_CHARS]
    return out


def kept_query(sent: Sequence[tuple[str, str]], own: Iterable[str]) -> tuple[dict[str, str], int]:
    """What a record keeps of a query string ``sent`` (pairs in the order sent) for a route
    whose own parameters are ``own``: each of them (its first value), then the others up
    to ``MAX_PARAMS`` in all; each value cut to ``MAX_PARAM_CHARS``. Returns the kept
    parameters and how many others were left out."""
    wanted = set(own)
    kept: dict[str, str] = {}
    for key, value in sent:
        if key in wanted and key not in kept:
            kept[key] = value[:MAX_PARAM_CHARS]
    omitted = 0
    for key, value in sent:
        if key in wanted:
            continue
        if len(kept) < MAX_PARAMS and key[:MAX_PARAM_CHARS] not in kept:
            kept[key[:MAX_PARAM_CHARS]] = value[:MAX_PARAM_CHARS]
        else:
            omitted += 1
    return kept, omitted


class ReadAudit(Protocol):
    """Where operator reads are recorded (the port)."""

    def record(self, entry: ReadRecord) -> None:
        """Keep ``entry`` durably (synced to disk, or acknowledged by the topic's in-sync
        replicas) before returning; ``ReadAuditUnavailable`` if that cannot be done."""
        ...

    def read(self) -> Iterator[ReadRecord]:
        """Every record kept, in the order kept; a record that cannot be decoded is a
        ``ValueError`` naming where it is (a damaged trail is not read past)."""
        ...

    def close(self) -> None: ...
