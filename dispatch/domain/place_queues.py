"""Which drivers are inside each geofenced place, and each place's first-in-first-out queue.

One fold, shared by the matcher (which offers a pickup inside a place to its queue's head
first), the views (``GET /places/{id}/queue``) and the replay tools (``replay state
--at``), so that all three put the same drivers in the same order. It is fed, in log
order, a driver's crossings (``Driver.EnteredPlace`` / ``LeftPlace``) and the changes of
its availability (whatever the caller folds them with: ``next_availability``).

The rule (docs/MARKETPLACE.md, "Places: geofences and queues"): a place that keeps a
queue (``queued``) queues the drivers inside it that are available, in the order they
became both. A driver leaves the queue when it leaves the place, takes an offer, goes
offline, is erased or is handed to another shard, and the last three take it out of every
place too (``leave_all``: its next ping inside enters again); one whose offer is declined,
expires or is withdrawn joins again at the tail (as at most airports: declining does not
keep a driver's place). Times are the events' own (seconds since the epoch), shown to
operators; the order is the log's.
"""

from __future__ import annotations

from collections.abc import Container, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# place, driver, entered at, queued at (None: inside, not queued); a place's queued rows
# come in queue order
PlaceRow = tuple[str, str, float, float | None]


class PlaceQueues(Generic[K]):
    """The fold: ``inside`` place -> driver -> entered at, ``queues`` place -> driver ->
    queued at (in queue order: dicts keep insertion order)."""

    def __init__(self, queued: Container[str] | None = None) -> None:
        """``queued``: the places that keep a queue (None: every place)."""
        self.keeps_queue: Container[str] | None = queued
        self.inside: dict[str, dict[K, float]] = {}
        self.queues: dict[str, dict[K, float]] = {}
        self.where: dict[K, set[str]] = {}

    def entered(self, place: str, driver: K, at: float, available: bool) -> None:
        """The driver came inside ``place``; available, it joins the queue's tail."""
        self.inside.setdefault(place, {})[driver] = at
        self.where.setdefault(driver, set()).add(place)
        if available and self._queues(place):
            self.queues.setdefault(place, {}).setdefault(driver, at)

    def _queues(self, place: str) -> bool:
        return self.keeps_queue is None or place in self.keeps_queue

    def left(self, place: str, driver: K) -> None:
        """The driver went outside ``place``: out of its queue too."""
        self._drop(self.inside, place, driver)
        self._drop(self.queues, place, driver)
        places = self.where.get(driver)
        if places is not None:
            places.discard(place)
            if not places:
                del self.where[driver]

    def availability(self, driver: K, available: bool, at: float) -> None:
        """The driver became available (joins the tail of each place it is inside, unless
        queued there already) or not (leaves every queue)."""
        for place in self.where.get(driver, ()):
            if available:
                if self._queues(place):
                    self.queues.setdefault(place, {}).setdefault(driver, at)
            else:
                self._drop(self.queues, place, driver)

    def leave_all(self, driver: K) -> None:
        """The driver is out of every place (offline, erased, or handed to another shard:
        its next ping inside enters again)."""
        for place in sorted(self.where.get(driver, ())):
            self.left(place, driver)

    def places_of(self, driver: K) -> frozenset[str]:
        return frozenset(self.where.get(driver, ()))

    def queue(self, place: str) -> list[tuple[K, float]]:
        """The place's queue, head first, with when each joined."""
        return list(self.queues.get(place, {}).items())

    def first(self, place: str) -> Iterable[K]:
        """The place's queued drivers, head first (a view: not to be kept across changes)."""
        return self.queues.get(place, {}).keys()

    def position(self, place: str, driver: K) -> int | None:
        """The driver's place in the queue, 1 at the head; None when not queued."""
        for n, queued in enumerate(self.queues.get(place, {}), start=1):
            if queued == driver:
                return n
        return None

    # -- a checkpoint's rows ------------------------------------------------------------
    def rows(self) -> list[PlaceRow]:
        """Every driver inside every place: each place's queue first, in order, then the
        rest (a checkpoint's ``places`` part)."""
        out: list[PlaceRow] = []
        for place in sorted(self.inside):
            inside = self.inside[place]
            queued = self.queues.get(place, {})
            out.extend((place, str(d), inside[d], at) for d, at in queued.items())
            out.extend((place, str(d), at, None) for d, at in inside.items() if d not in queued)
        return out

    def load(self, rows: Iterable[PlaceRow], key: type[K]) -> None:
        """Rows of ``rows`` into this (empty) fold; ``key`` makes a driver id of its text."""
        if self.inside:
            raise ValueError("places are loaded into an empty fold only")
        for place, driver_text, entered_at, queued_at in rows:
            driver = key(driver_text)  # type: ignore[call-arg]
            self.inside.setdefault(place, {})[driver] = float(entered_at)
            self.where.setdefault(driver, set()).add(place)
            if queued_at is not None and self._queues(place):
                self.queues.setdefault(place, {})[driver] = float(queued_at)

    @staticmethod
    def _drop(table: dict[str, dict[K, float]], place: str, driver: K) -> None:
        members = table.get(place)
        if members is not None:
            members.pop(driver, None)
            if not members:
                del table[place]
