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

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# What a record keeps of the request, at most: longer values are cut (an operator's query
# string is short; nothing is gained by keeping a flood).
MAX_PARAM_CHARS = 200
MAX_PARAMS = 16


class ReadAuditUnavailable(Exception):
    """The record could not be kept (the store failed or did not confirm in time)."""


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One operator read: when (``at``, the API's clock), who (id, name and operator role),
    what (``route``: the method and path template, e.g. ``GET /rides/{ride_id}``; ``params``:
    the path and query parameters as sent) and the request's own id."""

    at: float
    operator_id: str
    operator_name: str
    operator_role: str
    route: str
    params: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "operator_id": self.operator_id,
            "operator_name": self.operator_name,
            "operator_role": self.operator_role,
            "route": self.route,
            "params": dict(self.params),
            "request_id": self.request_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReadRecord:
        """A record as ``as_json`` wrote it; ``ValueError`` naming what is missing or wrong."""
        try:
            params = data.get("params", {})
            if not isinstance(params, Mapping):
                raise ValueError("params is not an object")
            at = data["at"]
            if isinstance(at, bool) or not isinstance(at, int | float):
                raise ValueError("at is not a number")
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
                {str(k): str(v) for k, v in params.items()},
                str(data.get("request_id", "")),
            )
        except KeyError as missing:
            raise ValueError(f"a read record without {missing}") from None


def bounded_params(params: Mapping[str, str]) -> dict[str, str]:
    """The first ``MAX_PARAMS`` parameters, each value cut to ``MAX_PARAM_CHARS``."""
    kept = list(params.items())[:MAX_PARAMS]
    return {k[:MAX_PARAM_CHARS]: v[:MAX_PARAM_CHARS] for k, v in kept}


class ReadAudit(Protocol):
    """Where operator reads are recorded (the port)."""

    def record(self, entry: ReadRecord) -> None:
        """Keep ``entry`` durably (synced to disk, or acknowledged by the topic's in-sync
        replicas) before returning; ``ReadAuditUnavailable`` if that cannot be done."""
        ...

    def read(self) -> Iterator[ReadRecord]:
        """Every record kept, in the order kept (records a reader cannot decode are
        skipped with a warning)."""
        ...

    def close(self) -> None: ...
