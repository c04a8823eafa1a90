"""The local tracking store: the highest notification id recorded per upstream application.

Rebuilt from the shard's partition of the compacted ``<p>.tracking`` topic (key = application
name), where each record is written in the same Kafka transaction as the events it tracks.
Pending updates follow the same rules as the event store's pending rows (see ``store``).
"""

from __future__ import annotations

from threading import Lock, get_ident

from eventsourcing.persistence import IntegrityError, Tracking


class TrackingTable:
    """The highest notification id processed per upstream application, with pending updates."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._committed: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._owner: int | None = None

    def load(self, tracking: Tracking) -> None:
        with self._lock:
            current = self._committed.get(tracking.application_name)
            if current is None or tracking.notification_id > current:
                self._committed[tracking.application_name] = tracking.notification_id

    def check(self, tracking: Tracking) -> None:
        current = self.max_tracking_id(tracking.application_name)
        if current is not None and tracking.notification_id <= current:
            raise IntegrityError(
                f"tracking {tracking.application_name} {tracking.notification_id} "
                f"is not greater than the recorded {current}"
            )

    def add_pending(self, tracking: Tracking) -> None:
        with self._lock:
            self._owner = get_ident()
            self._pending[tracking.application_name] = tracking.notification_id

    def commit(self) -> None:
        with self._lock:
            self._committed.update(self._pending)
            self._pending.clear()
            self._owner = None

    def rollback(self) -> None:
        with self._lock:
            self._pending.clear()
            self._owner = None

    def max_tracking_id(self, application_name: str) -> int | None:
        with self._lock:
            if self._owner == get_ident() and application_name in self._pending:
                return self._pending[application_name]
            return self._committed.get(application_name)
