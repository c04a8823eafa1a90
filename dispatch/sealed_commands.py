"""Commands whose personal fields travel sealed under a one-time key (docs/PRIVACY.md,
"Sealed commands").

On Kafka a command waits on the commands topic (7 days) and a dead-lettered one on the
dead-letters topic (30 days), longer than an erasure may take. So the API seals a
command's personal fields (``COMMAND_FIELDS``) under a key of its own, whose subject is a
random id in the shard that decides the command (``command_subject``): made by the API
once, before it sends the command, and deleted by the worker that decides it, in that
batch's transaction. Once deleted, every copy of the command (the topic, a dead letter)
is unreadable.

On the wire the command's JSON holds a token (``dispatch.privacy``) in place of each
personal field, and the envelope's JSON names the key's subject (``KEY_FIELD``), taken off
before the envelope is validated. A record without it is a command of before (or of a
sender that does not seal), read as it is.

Pure core: the standard library and ``dispatch.privacy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final
from uuid import UUID

from dispatch.domain.ids import new_id, shard_of
from dispatch.privacy import (
    ERASED,
    DamagedValue,
    FieldCipher,
    PersonalData,
    SubjectKey,
    seal_value,
)

KEY_FIELD: Final = "command_key"  # the envelope JSON's field naming the key's subject
# The envelope's other fingerprints of the request (one is the unkeyed SHA-256 of before
# keyed fingerprints, which confirms a guessed name or pickup): sealed with the fields, so
# they die with the key (docs/PRIVACY.md, "Sealed commands").
ALTERNATES_FIELD: Final = "fingerprint_alternates"
# Which fields of which command types are personal: sealed on the commands topic.
COMMAND_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "register_rider": ("name",),
    "register_driver": ("name",),
    "request_ride": ("pickup", "dropoff"),
}


class CommandKeyGone(Exception):
    """A sealed command whose key cannot be had (deleted: the command was handled, or its
    key never written), or whose fields do not open with it: the record is poison."""


def command_subject(shard: int) -> UUID:
    """A fresh subject for one command decided by ``shard``: its key lands in the
    partition of that shard, which the shard's worker deletes it from."""
    return new_id(shard)


def _field(kind: str, name: str) -> str:
    return f"command.{kind}.{name}"


def seals(body: dict[str, Any]) -> bool:
    """Whether an envelope's JSON has personal fields to seal."""
    return body.get("command", {}).get("type") in COMMAND_FIELDS


class CommandSealer:
    """The API's side: ``make_key`` makes and stores (durably, before it returns) the key
    of a new subject; ``seal`` turns an envelope's JSON into its sealed form."""

    def __init__(self, cipher: FieldCipher, make_key: Callable[[UUID], SubjectKey]) -> None:
        self.cipher, self.make_key = cipher, make_key

    def seal(self, body: dict[str, Any], shard: int) -> dict[str, Any]:
        """A copy of ``body`` (an envelope's JSON, decided by ``shard``) with its personal
        fields sealed under a new key, or ``body`` itself if it has none."""
        if not seals(body):
            return body
        command = dict(body["command"])
        key = self.make_key(command_subject(shard))
        kind = command["type"]
        for name in COMMAND_FIELDS[kind]:
            command[name] = seal_value(self.cipher, key, _field(kind, name), command[name])
        sealed = {**body, KEY_FIELD: str(key.subject), "command": command}
        if body.get(ALTERNATES_FIELD):
            alternates = body[ALTERNATES_FIELD]
            sealed[ALTERNATES_FIELD] = seal_value(self.cipher, key, ALTERNATES_FIELD, alternates)
        return sealed


def subject_of(body: dict[str, Any]) -> UUID | None:
    """The subject of a sealed command's key (None: not sealed); ``CommandKeyGone`` for a
    name that is not an id."""
    named = body.get(KEY_FIELD)
    if named is None:
        return None
    try:
        return UUID(str(named))
    except ValueError:
        raise CommandKeyGone(f"{KEY_FIELD} is not an id: {str(named)[:40]!r}") from None


def open_command(body: dict[str, Any], personal: PersonalData, shard: int) -> UUID | None:
    """Open a sealed command's fields in place (``body`` is an envelope's JSON read at
    ``shard``), and take off the key's subject, which it returns (None: not sealed).
    ``CommandKeyGone`` when the key is known deleted, a field does not open, or the key is
    not one of ``shard``'s (a record moved from another shard's partition);
    ``KeyNotYetKnown`` when the key is not visible (yet): late, or deleted long ago, which
    the caller tells apart by the command's age (``dispatch.adapters.kafka.worker``)."""
    subject = subject_of(body)
    if subject is None:
        return None
    del body[KEY_FIELD]
    if shard_of(subject) != shard:
        raise CommandKeyGone(f"sealed under a key of shard {shard_of(subject)}, read at {shard}")
    command = body.get("command")
    kind = command.get("type") if isinstance(command, dict) else None
    if not isinstance(command, dict) or kind not in COMMAND_FIELDS:
        raise CommandKeyGone(f"a sealed command of a type with no personal fields: {kind!r}")
    for name in COMMAND_FIELDS[kind]:
        try:  # a key not (yet) visible here raises KeyNotYetKnown: the caller reads again
            value = personal.open(command.get(name), _field(kind, name), subject)
        except DamagedValue as error:
            raise CommandKeyGone(f"{name} does not open: {error}") from None
        if value is ERASED:
            raise CommandKeyGone(f"its key ({subject}) is deleted")
        command[name] = value
    if ALTERNATES_FIELD in body:
        try:
            alternates = personal.open(body[ALTERNATES_FIELD], ALTERNATES_FIELD, subject)
        except DamagedValue as error:
            raise CommandKeyGone(f"{ALTERNATES_FIELD} does not open: {error}") from None
        if alternates is ERASED:
            raise CommandKeyGone(f"its key ({subject}) is deleted")
        body[ALTERNATES_FIELD] = alternates
    return subject
