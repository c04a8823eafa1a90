"""Which fields of the stored events and snapshots are personal, whose they are, and the
mapper that seals them when the shard application stores them (docs/PRIVACY.md).

``PERSONAL`` is the one table: for each stored topic, its personal fields and the subject
each belongs to (a name to its rider or driver; a ride's pickup and drop-off to its rider;
the coordinates of an ``OpenRide`` and the name of a ``HandOff`` in a link's messages).
``SealingMapper`` is the library's mapper with that table applied to an event's state
before the JSON transcoding, and undone after it: the application reads its aggregates in
the clear, and an erased subject's fields as ``ERASED_AS`` gives them (a name "erased",
a coordinate None), never an error.

The embedded workers seal (``bootstrap.build_sealer``), and so do Kafka workers
(``bootstrap.build_kafka_worker``: keys on the subject-keys topic, sent in the batch's
transaction), which also seal the bodies of the shard-messages records they send.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Cipher, Compressor, Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from dispatch.domain.geo import Point
from dispatch.privacy import (
    ERASED,
    SHOWN_ERASED,
    DamagedValue,
    PersonalData,
    Sealed,
    SubjectErased,
    SubjectKey,
)

log = logging.getLogger(__name__)

SNAPSHOT_TOPIC = "eventsourcing.domain:Snapshot"

Owner = Callable[[Mapping[str, Any], Any], UUID]


def _itself(_state: Mapping[str, Any], originator_id: Any) -> UUID:
    return UUID(str(originator_id))


def _rider(state: Mapping[str, Any], _originator_id: Any) -> UUID:
    return UUID(str(state["rider_id"]))


def _body_rider(body: Mapping[str, Any], _originator_id: Any) -> UUID:
    return UUID(str(body["rider"]))


def _body_driver(body: Mapping[str, Any], _originator_id: Any) -> UUID:
    return UUID(str(body["driver"]))


@dataclass(frozen=True, slots=True)
class Fields:
    """Personal fields of one state dict, the subject they belong to, and what the
    application reads in place of an erased one."""

    names: tuple[str, ...]
    owner: Owner
    erased_as: Any
    points: bool = False  # held as ``Point``s (aggregate state), sealed as [lat, lng]
    erased_by_name: tuple[tuple[str, Any], ...] = ()  # ``erased_as`` of these names instead

    def erased(self, name: str) -> Any:
        """What the field ``name`` reads as once its subject is erased."""
        for field_name, value in self.erased_by_name:
            if field_name == name:
                return list(value) if isinstance(value, list) else value  # never shared
        return self.erased_as


_NAME = Fields(("name",), _itself, SHOWN_ERASED)
# A driver's crossings of geofenced places (which place, when): read as None once erased,
# and a driver's state's places as none at all.
_PLACE = Fields(("place",), _itself, None)
# A repositioning hint names a cell near the driver, and its centre: where it was, and when.
_HINT = Fields(("cell", "lat", "lng"), _itself, None)
_DRIVER_STATE = Fields(("name", "places"), _itself, SHOWN_ERASED, erased_by_name=(("places", []),))
_RIDE_EVENT = Fields(("pickup", "dropoff"), _rider, None)
_RIDE_STATE = Fields(("pickup", "dropoff"), _rider, None, points=True)
# A link's messages (``Link.Sent.body``; ``[seq, kind, body]`` in a link's state), by kind.
MESSAGES: dict[str, Fields] = {
    "OpenRide": Fields(
        ("pickup_lat", "pickup_lng", "dropoff_lat", "dropoff_lng"), _body_rider, None
    ),
    "HandOff": Fields(("name",), _body_driver, SHOWN_ERASED),
}
# Stored events by topic; snapshots by the topic of the aggregate they hold.
PERSONAL: dict[str, Fields] = {
    "dispatch.Rider.Registered": _NAME,
    "dispatch.Driver.Registered": _NAME,
    "dispatch.Driver.Arrived": _NAME,
    "dispatch.Driver.EnteredPlace": _PLACE,
    "dispatch.Driver.LeftPlace": _PLACE,
    "dispatch.Driver.Hinted": _HINT,
    "dispatch.Ride.Requested": _RIDE_EVENT,
    "dispatch.Ride.Scheduled": _RIDE_EVENT,
}
PERSONAL_STATE: dict[str, Fields] = {
    "dispatch.Rider": _NAME,
    "dispatch.Driver": _DRIVER_STATE,
    "dispatch.Ride": _RIDE_STATE,
}
LINK_SENT = "dispatch.Link.Sent"
LINK = "dispatch.Link"
KEY_CACHE_SIZE = 100_000


class Sealer:
    """Seals and opens the personal fields of stored states, keys cached by subject (least
    recently used dropped first). One sealer serves every shard thread of a process: its
    cache is under a lock, and a key is cached only if its subject is not erased by then."""

    def __init__(self, personal: PersonalData) -> None:
        self.personal = personal
        self._keys: OrderedDict[UUID, SubjectKey] = OrderedDict()
        self._lock = threading.Lock()
        self._damage_logged: set[tuple[UUID | None, str]] = set()

    def erase(self, subject: UUID) -> None:
        """Delete the subject's key, durably, and drop it from the cache."""
        with self._lock:
            self.personal.keys.erase(subject)
            self._keys.pop(subject, None)

    def forget(self, subjects: Iterable[UUID]) -> None:
        """Drop cached keys that were never stored (a Kafka batch that aborted)."""
        with self._lock:
            for subject in subjects:
                self._keys.pop(subject, None)

    def key(self, subject: UUID) -> SubjectKey:
        with self._lock:
            # keys another process deleted, as the store has read them (a tombstone or an
            # erased marker): dropped, not kept until evicted (review finding 7)
            for deleted in self.personal.keys.take_deleted():
                self._keys.pop(deleted, None)
            found = self._keys.get(subject)
            if found is not None:
                self._keys.move_to_end(subject)
                return found
        made = self.personal.keys.create(subject)  # outside the lock: a durable write
        with self._lock:
            # an erasure on another thread meanwhile wins: the key is not cached again
            if self.personal.keys.erased(subject):
                raise SubjectErased(subject)
            found = self._keys.setdefault(subject, made)
            if len(self._keys) > KEY_CACHE_SIZE:
                self._keys.popitem(last=False)
            return found

    def prepare(self, events: Iterable[DomainEventProtocol[UUID]]) -> None:
        """Make ahead, in one durable write where the store can (``KeyStore.create_ahead``),
        the keys that sealing ``events`` (a batch, before it is saved) will take, and cache
        them, so the batch's new riders and drivers cost one synced commit, not one each.
        A subject erased by then is left to ``key`` (which says so)."""
        wanted: dict[UUID, None] = {}
        for event in events:
            state = vars(event)
            for subject in self.subjects(get_topic(event.__class__), state):
                wanted[subject] = None
        with self._lock:
            missing = [subject for subject in wanted if subject not in self._keys]
        if not missing:
            return
        made = self.personal.keys.create_ahead(missing)  # outside the lock: a durable write
        with self._lock:
            for subject, key in made.items():
                if not self.personal.keys.erased(subject):  # an erasure meanwhile wins
                    self._keys.setdefault(subject, key)
            while len(self._keys) > KEY_CACHE_SIZE:
                self._keys.popitem(last=False)

    @staticmethod
    def subjects(topic: str, state: Mapping[str, Any]) -> list[UUID]:
        """Whose keys sealing a stored event of ``topic`` takes (as ``seal_state`` seals
        it; snapshots are taken after their batch is saved, their keys made by then)."""
        fields = PERSONAL.get(topic)
        if fields is not None:
            return [fields.owner(state, state.get("originator_id"))]
        if topic == LINK_SENT:
            message = MESSAGES.get(state["kind"])
            return [] if message is None else [message.owner(state["body"], None)]
        return []

    # -- one dict of fields ------------------------------------------------------------------
    def seal(self, fields: Fields, state: dict[str, Any], originator_id: Any) -> dict[str, Any]:
        """``state`` with its personal fields sealed; an erased subject's (a snapshot of an
        erased rider, or of a ride of theirs) stored as they read after erasure."""
        sealed = dict(state)
        try:
            key = self.key(fields.owner(state, originator_id))
        except SubjectErased:
            sealed.update((name, fields.erased(name)) for name in fields.names if name in state)
            return sealed
        for name in fields.names:
            value = state.get(name)
            # every value the domain gives is sealed, whatever its text; only a token this
            # process made (typed ``Sealed``) is kept as it is
            if value is not None and not isinstance(value, Sealed):
                plain = value.as_list() if fields.points else value
                sealed[name] = self.personal.seal(key, name, plain)
        return sealed

    def open(
        self, fields: Fields, state: dict[str, Any], originator_id: Any = None, strict: bool = False
    ) -> None:
        """Open ``state``'s personal fields in place. A value that does not open (does not
        parse, does not authenticate, or is another subject's token) reads as erased and is
        logged once: an aggregate is never unloadable because of one field. ``strict``:
        ``DamagedValue`` instead (a record read from another process: poison)."""
        try:
            owner: UUID | None = fields.owner(state, originator_id)
        except (KeyError, TypeError, ValueError):
            owner = None
        for name in fields.names:
            if name not in state:
                continue
            try:
                value = self.personal.open(state[name], name, owner)
            except DamagedValue as damage:
                if strict:
                    raise
                self._log_damage(owner, name, damage)
                value = ERASED
            if value is ERASED:
                state[name] = fields.erased(name)
            elif fields.points and value is not None and not isinstance(value, Point):
                state[name] = Point.from_list(value)
            else:
                state[name] = value

    def _log_damage(self, owner: UUID | None, name: str, damage: DamagedValue) -> None:
        with self._lock:
            if (owner, name) in self._damage_logged:
                return
            self._damage_logged.add((owner, name))
        log.error("personal field %s of %s does not open, read as erased: %s", name, owner, damage)

    # -- a stored topic's state ----------------------------------------------------------------
    def seal_state(self, topic: str, state: dict[str, Any], originator_id: Any) -> dict[str, Any]:
        fields = PERSONAL.get(topic)
        if fields is not None:
            return self.seal(fields, state, originator_id)
        if topic == LINK_SENT:
            return {**state, "body": self.seal_message(state["kind"], state["body"])}
        if topic == SNAPSHOT_TOPIC:
            inner = self._seal_aggregate(state["topic"], state["state"], originator_id)
            return {**state, "state": inner}
        return state

    def open_state(self, topic: str, state: dict[str, Any]) -> None:
        fields = PERSONAL.get(topic)
        if fields is not None:
            self.open(fields, state, state.get("originator_id"))
        elif topic == LINK_SENT:
            self.open_message(state["kind"], state["body"])
        elif topic == SNAPSHOT_TOPIC:
            self._open_aggregate(state["topic"], state["state"], state.get("originator_id"))

    def _seal_aggregate(self, topic: str, state: dict[str, Any], aggregate: Any) -> dict[str, Any]:
        fields = PERSONAL_STATE.get(topic)
        if fields is not None:
            return self.seal(fields, state, aggregate)
        if topic == LINK:
            unacked = [[s, k, self.seal_message(k, b)] for s, k, b in state["unacked"]]
            return {**state, "unacked": unacked}
        return state

    def _open_aggregate(self, topic: str, state: dict[str, Any], aggregate: Any) -> None:
        fields = PERSONAL_STATE.get(topic)
        if fields is not None:
            self.open(fields, state, aggregate)
        elif topic == LINK:
            for _seq, kind, body in state["unacked"]:
                self.open_message(kind, body)

    def seal_message(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """A message body (a ``Link.Sent``'s, or a shard-messages record's) with its
        personal fields sealed (``MESSAGES``); other kinds as they are."""
        fields = MESSAGES.get(kind)
        return body if fields is None else self.seal(fields, body, None)

    def open_message(self, kind: str, body: dict[str, Any]) -> None:
        """Open a message body's sealed fields in place (damage read as erased)."""
        fields = MESSAGES.get(kind)
        if fields is not None:
            self.open(fields, body)

    def open_record(self, kind: str, body: dict[str, Any]) -> None:
        """Open a shard-messages record's body in place; ``DamagedValue`` when a field
        does not open (the record is poison)."""
        fields = MESSAGES.get(kind)
        if fields is not None:
            self.open(fields, body, strict=True)


class SealingMapper(Mapper[UUID]):
    """The library's mapper, with the personal fields of each state sealed before the JSON
    transcoding and opened after it (``Sealer``)."""

    def __init__(
        self,
        transcoder: Transcoder,
        compressor: Compressor | None = None,
        cipher: Cipher | None = None,
        *,
        sealer: Sealer,
    ) -> None:
        super().__init__(transcoder, compressor, cipher)
        self.sealer = sealer

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        topic = get_topic(domain_event.__class__)
        state = vars(domain_event)
        sealed = self.sealer.seal_state(topic, state, state.get("originator_id"))
        if sealed is state:
            return super().to_stored_event(domain_event)
        copy = object.__new__(domain_event.__class__)
        object.__setattr__(copy, "__dict__", sealed)
        return super().to_stored_event(copy)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        event = super().to_domain_event(stored_event)
        self.sealer.open_state(stored_event.topic, vars(event))
        return event
