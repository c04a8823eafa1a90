"""Personal fields sealed under a key per data subject, so erasing the key erases them.

A personal field (a name; a ride's pickup and drop-off, which belong to its rider) is kept
as a text token in place of its value (docs/PRIVACY.md)::

    pf1.<subject id>.<key id>.<base64url(nonce || ciphertext || tag)>

The plaintext is the value's JSON; the cipher is authenticated (AES-GCM, behind
``FieldCipher``) with ``pf1|<subject id>|<field>`` as associated data, so a token moved to
another field does not open, and a reader that knows whose record it reads passes the
expected owner to ``open``: a token of another subject is damage. ``pf1.`` tells a stored
token from a stored plain value (a reader's test, ``is_sealed``); in memory, a value the
sealer made is a ``Sealed`` (a ``str``), so a client's text that merely starts with
``pf1.`` is sealed like any other.
Keys live in a ``KeyStore`` the engine controls; once a subject's key is erased, opening
its tokens gives ``ERASED`` instead of failing. A store keeps each key wrapped by a
``KeyWrap`` (encrypted under a key-encryption key held outside the data dir and the log:
docs/PRIVACY.md, "Wrapped keys"), or as it is when none is configured.

Pure core: the standard library only; the cipher and the key stores are adapters.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

MARKER: Final = "pf1."
KEY_BYTES: Final = 32  # AES-256
KID_BYTES: Final = 8


class DamagedValue(Exception):
    """A sealed value that does not open with a key its subject has (damaged, or moved to
    another subject or field): never shown as erased, since its key exists."""


class KeyNotYetKnown(Exception):
    """A token's key is not (yet) known to this process, and its subject is not erased: a
    key committed by another process but not yet readable here (a reader stops at the last
    stable offset, which lags a commit). Retryable: never read as erased (the batch that
    meets it aborts and is decided again)."""

    def __init__(self, subject: UUID, waited_s: float) -> None:
        super().__init__(f"the key of subject {subject} is not known after {waited_s:.1f} s")
        self.subject = subject


class SubjectErased(Exception):
    """The subject's key was erased: no key is made for it again."""

    def __init__(self, subject: UUID) -> None:
        super().__init__(f"subject {subject} is erased")
        self.subject = subject


class _Erased:
    """What an erased value reads as (one instance, ``ERASED``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ERASED"

    def __str__(self) -> str:
        return "erased"


ERASED: Final = _Erased()
SHOWN_ERASED: Final = "erased"  # what a reader shows in place of an erased value


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """One subject's key and its id. The key's bytes never appear in a repr."""

    subject: UUID
    kid: str
    key: bytes = field(repr=False)


def new_subject_key(subject: UUID) -> SubjectKey:
    """A fresh random key for ``subject`` (the standard library's CSPRNG)."""
    return SubjectKey(subject, secrets.token_hex(KID_BYTES), secrets.token_bytes(KEY_BYTES))


class KeyWrapError(Exception):
    """A kept subject key that cannot be unwrapped: its key-encryption key is not
    configured here, or it does not authenticate under it (another key under that id, or
    damage). Never read as erased: the key exists, this process cannot read it."""


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A subject key as a store keeps it: ``blob`` wrapped under the key-encryption key
    ``kek``, or the key itself when ``kek`` is None (not wrapped)."""

    kek: str | None
    blob: bytes = field(repr=False)


class KeyWrap(ABC):
    """The key-wrapping port: subject keys encrypted under a key-encryption key (KEK)
    before a store keeps them, bound to their subject and key id."""

    @property
    @abstractmethod
    def current(self) -> str | None:
        """The id of the KEK new keys are wrapped under; None: they are kept as they are."""

    @property
    @abstractmethod
    def known(self) -> frozenset[str]:
        """The ids of the KEKs this process can unwrap with."""

    @abstractmethod
    def wrap(self, key: SubjectKey) -> StoredKey:
        """``key`` as a store keeps it (under the current KEK)."""

    @abstractmethod
    def unwrap(self, subject: UUID, kid: str, stored: StoredKey) -> bytes:
        """The key's bytes; a key kept as it is (``kek`` None) is read as it is.
        ``KeyWrapError`` when its KEK is not known here or it does not authenticate."""


class NoWrap(KeyWrap):
    """No KEK configured: keys kept as they are; a wrapped key is a ``KeyWrapError``."""

    @property
    def current(self) -> str | None:
        return None

    @property
    def known(self) -> frozenset[str]:
        return frozenset()

    def wrap(self, key: SubjectKey) -> StoredKey:
        return StoredKey(None, key.key)

    def unwrap(self, subject: UUID, kid: str, stored: StoredKey) -> bytes:
        if stored.kek is not None:
            raise KeyWrapError(
                f"the key of subject {subject} is wrapped under key-encryption key "
                f"{stored.kek!r}, and none is configured (DISPATCH_KEY_ENCRYPTION_KEYS)"
            )
        return plain_key(subject, stored.blob)


def plain_key(subject: UUID, blob: bytes) -> bytes:
    """A key kept as it is: its bytes, or ``KeyWrapError`` when it is not a key's size."""
    if len(blob) != KEY_BYTES:
        raise KeyWrapError(f"the key of subject {subject} is {len(blob)} bytes, not {KEY_BYTES}")
    return blob


def wrap_aad(subject: UUID, kid: str) -> bytes:
    """What a wrapped key is bound to: its subject and key id (a wrapped key moved to
    another subject does not unwrap)."""
    return f"sk1|{subject}|{kid}".encode()


class FieldCipher(ABC):
    """The field cipher port: authenticated encryption of one value with associated data."""

    @abstractmethod
    def seal(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` encrypted and authenticated with ``aad`` (nonce included)."""

    @abstractmethod
    def open(self, key: bytes, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext of ``sealed``; ``DamagedValue`` when it does not authenticate."""


class KeyStore(ABC):
    """The key store port: one key per data subject, created, looked up and erased.

    Adapters: the embedded one (``adapters.sqlite.keystore``) and Kafka's compacted
    topic (``adapters.kafka.keystore``); ``tests/contract`` runs the same cases on both."""

    @abstractmethod
    def create(self, subject: UUID) -> SubjectKey:
        """The subject's key, made and stored durably now if it has none (the same key on
        every later call); ``SubjectErased`` when its key was erased."""

    def create_ahead(self, subjects: Iterable[UUID]) -> dict[UUID, SubjectKey]:
        """The keys of a batch's subjects, made ahead of its sealing in one durable write,
        where each ``create`` would be a durable write of its own (the embedded store: one
        synced commit for a batch's new riders and drivers, not one each); the erased
        subjects left out. A store whose keys go in the batch's own transaction (Kafka)
        makes none ahead: ``{}``, and ``create`` makes each on use, as before."""
        return {}

    @abstractmethod
    def get(self, subject: UUID, kid: str) -> bytes | None:
        """The subject's key of id ``kid``, or None (never made, or erased)."""

    @abstractmethod
    def erase(self, subject: UUID) -> bool:
        """Delete the subject's key, durably, and remember that it is erased. True when a
        key was deleted now; False when there was none (idempotent)."""

    @abstractmethod
    def erased(self, subject: UUID) -> bool:
        """Whether the subject's key was erased."""

    @abstractmethod
    def close(self) -> None:
        """Release what the store keeps open."""

    # -- an erasure's batch (dispatch/shard/sealing.py) ---------------------------------------
    def erases_with_the_batch(self) -> bool:
        """Whether an erasure now is part of the open batch's own transaction (Kafka: a
        joined batch), so it needs no pending record."""
        return False

    def pend_erasures(self, subjects: Iterable[UUID]) -> None:
        """Record durably, before the erasing batch is saved, that these subjects' keys
        are to be deleted once it is; ``erase`` clears the record."""
        raise NotImplementedError(f"{type(self).__name__} keeps no pending erasures")

    def pending_erasures(self) -> list[UUID]:
        """The subjects whose erasure was pending when the process stopped."""
        return []

    def drop_pending(self, subject: UUID) -> None:
        """Forget a pending erasure whose batch was never saved (the key is kept)."""
        return None

    def take_deleted(self) -> list[UUID]:
        """The subjects whose key this store has read deleted (by another process) since
        the last call, for a cache of keys to drop (the first call starts the tracking)."""
        return []


def aad(subject: UUID, field_name: str) -> bytes:
    return f"pf1|{subject}|{field_name}".encode()


class Sealed(str):
    """A token the sealer made, marked by its type in memory (never by its text: a client
    may send any text). Stored and read back, it is a plain ``str`` again."""

    __slots__ = ()


def is_sealed(value: Any) -> bool:
    """Whether a value read from a store is a token (stored values were all sealed once
    sealing began; older plain values may start with ``pf1.`` too: see ``open``)."""
    return isinstance(value, str) and value.startswith(MARKER)


@dataclass(frozen=True, slots=True)
class Token:
    """A sealed value's parts."""

    subject: UUID
    kid: str
    sealed: bytes

    @classmethod
    def parse(cls, text: str) -> Token:
        parts = text.split(".")
        if len(parts) != 4 or f"{parts[0]}." != MARKER:
            raise DamagedValue(f"not a sealed value: {len(parts)} parts")
        try:
            subject = UUID(parts[1])
            padded = parts[3] + "=" * (-len(parts[3]) % 4)
            sealed = base64.b64decode(padded, altchars=b"-_", validate=True)
        except (ValueError, binascii.Error) as error:
            raise DamagedValue(f"not a sealed value: {error}") from None
        return cls(subject, parts[2], sealed)

    def text(self) -> str:
        body = base64.urlsafe_b64encode(self.sealed).rstrip(b"=").decode()
        return f"{MARKER}{self.subject}.{self.kid}.{body}"


def seal_value(cipher: FieldCipher, key: SubjectKey, field_name: str, value: Any) -> Sealed:
    """``value`` (anything JSON can write, whatever its text) as a token of ``key``'s
    subject, sealed by ``cipher``."""
    plaintext = json.dumps(value, separators=(",", ":")).encode()
    sealed = cipher.seal(key.key, plaintext, aad(key.subject, field_name))
    return Sealed(Token(key.subject, key.kid, sealed).text())


class PersonalData:
    """Seals and opens personal fields with a cipher and a key store."""

    def __init__(self, cipher: FieldCipher, keys: KeyStore) -> None:
        self.cipher = cipher
        self.keys = keys

    def seal(self, key: SubjectKey, field_name: str, value: Any) -> Sealed:
        """``value`` (anything JSON can write, whatever its text) as a token of ``key``'s
        subject."""
        return seal_value(self.cipher, key, field_name, value)

    def open(self, value: Any, field_name: str, owner: UUID | None = None) -> Any:
        """The plaintext value of a token, ``ERASED`` when its subject's key is gone, and
        any value that is not a token as it is (stored before sealing, or not personal).
        ``DamagedValue`` when it does not parse or authenticate, or when ``owner`` is given
        and the token is another subject's (a token copied into someone else's record)."""
        if not is_sealed(value):
            return value
        token = Token.parse(value)
        if owner is not None and token.subject != owner:
            raise DamagedValue(f"a token of another subject in {owner}'s {field_name}")
        key = self.keys.get(token.subject, token.kid)
        if key is None:
            return ERASED
        plaintext = self.cipher.open(key, token.sealed, aad(token.subject, field_name))
        return json.loads(plaintext)


def shown(value: Any) -> Any:
    """A reader's form of an opened value: ``"erased"`` for ``ERASED``."""
    return SHOWN_ERASED if value is ERASED else value


# How a reader opens a value it found in the log (``PersonalData.open``): the value, or
# ``ERASED``; ``as_is`` leaves tokens as they are (a reader with no key store).
Opener = Callable[[Any, str], Any]


def as_is(value: Any, _field: str) -> Any:
    return value


class LazyKeyStore(KeyStore):
    """A key store made on first use: a reader that never meets a token never needs one
    (nor, on Kafka, the keys topic)."""

    def __init__(self, make: Callable[[], KeyStore]) -> None:
        self._make = make
        self._store: KeyStore | None = None

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            self._store = self._make()
        return self._store

    def open_now(self) -> None:
        """Make the store now (a process that will need it, and should fail at start if
        it cannot have it)."""
        _ = self.store

    def create(self, subject: UUID) -> SubjectKey:
        return self.store.create(subject)

    def create_ahead(self, subjects: Iterable[UUID]) -> dict[UUID, SubjectKey]:
        return self.store.create_ahead(subjects)

    def get(self, subject: UUID, kid: str) -> bytes | None:
        return self.store.get(subject, kid)

    def erase(self, subject: UUID) -> bool:
        return self.store.erase(subject)

    def erased(self, subject: UUID) -> bool:
        return self.store.erased(subject)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def erases_with_the_batch(self) -> bool:
        return self.store.erases_with_the_batch()

    def pend_erasures(self, subjects: Iterable[UUID]) -> None:
        self.store.pend_erasures(subjects)

    def pending_erasures(self) -> list[UUID]:
        return self.store.pending_erasures()

    def drop_pending(self, subject: UUID) -> None:
        self.store.drop_pending(subject)

    def take_deleted(self) -> list[UUID]:
        return self.store.take_deleted() if self._store is not None else []
