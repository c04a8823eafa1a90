"""Idempotency keys and request fingerprints.

The engine is the only memory of a keyed write: the command record of its command id keeps
the fingerprint of the request it came with (``dispatch.domain.command_record``). A retry
with the same fingerprint gets the first outcome back and changes nothing; the same key
with another fingerprint is refused (``idempotency_key_reused``). Nothing is remembered
in the API process, so the answer is the same after a restart and on any instance, and no
bearer token is ever stored.

A key on an authenticated route is scoped by the caller (its id is part of the command
id). A registration has no caller, so its key must be unguessable: a version-4 UUID, whose
122 random bits nobody can guess to replay someone else's registration.

A fingerprint is kept in the log forever, so it is keyed (docs/PRIVACY.md, "Request
fingerprints"): ``f2.<kid>.<hex>``, an HMAC-SHA256 of route, caller and body under a key
derived (HKDF-SHA256, its own label) from the token key ``kid`` of ``DISPATCH_AUTH_*``:
whoever holds the log but not the keys cannot check a guess of a name or a pickup against
it. The API sends the fingerprint under the signing key, and as alternates the ones under
the ring's other keys (a retry after a key rotation still matches the record its first
attempt wrote, while the old key is in the ring) and, while
``DISPATCH_AUTH_ACCEPT_LEGACY_FINGERPRINTS`` is true, the plain SHA-256 of version 1 (a
record written before this version still answers its retries). The record keeps the
first only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from dispatch.api.errors import ApiError

FINGERPRINT_VERSION = "f2"
# Fixed for good: the HKDF label that sets fingerprint keys apart from the token keys.
FINGERPRINT_LABEL = b"dispatch request fingerprint v2"


def _request(method: str, path: str, caller: str, body: str) -> bytes:
    return b"".join(part.encode() + b"\x1f" for part in (method, path, caller, body))


def legacy_fingerprint(method: str, path: str, caller: str, body: str) -> str:
    """Version 1, in records written before fingerprints were keyed: an unsalted SHA-256
    of route, caller and body (anyone can recompute it from a guess)."""
    return hashlib.sha256(_request(method, path, caller, body)).hexdigest()


def hkdf_sha256(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF (RFC 5869) with SHA-256 and no salt: a key for ``info`` alone from ``secret``."""
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A keyed request's fingerprint (recorded) and the ones that also match its record
    (under the ring's other keys; the legacy SHA-256)."""

    primary: str
    alternates: tuple[str, ...] = ()


class Fingerprinter:
    """Fingerprints under the token key ring: ``keys`` by key id, ``current`` the id of the
    one whose fingerprint is recorded."""

    def __init__(self, keys: Mapping[str, str], current: str, legacy: bool) -> None:
        if current not in keys:
            raise ValueError(f"no fingerprint key {current!r} in the ring")
        self._keys = {
            kid: hkdf_sha256(secret.encode(), FINGERPRINT_LABEL + b"|" + kid.encode())
            for kid, secret in keys.items()
        }
        self._current = current
        self._legacy = legacy

    def _under(self, kid: str, request: bytes) -> str:
        digest = hmac.new(self._keys[kid], request, hashlib.sha256).hexdigest()
        return f"{FINGERPRINT_VERSION}.{kid}.{digest}"

    def of(self, method: str, path: str, caller: str, body: str) -> Fingerprint:
        """The request a command id stands for: route, caller and the validated body."""
        request = _request(method, path, caller, body)
        others = [self._under(kid, request) for kid in sorted(self._keys) if kid != self._current]
        if self._legacy:
            others.append(legacy_fingerprint(method, path, caller, body))
        return Fingerprint(self._under(self._current, request), tuple(others))


def registration_key(key: str) -> str:
    """``key`` if it is a version-4 UUID (in canonical form), else a 422 with the reason."""
    try:
        parsed = UUID(key)
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4 or str(parsed) != key.lower():
        raise ApiError(
            422,
            "invalid_request",
            "an Idempotency-Key on a registration must be a random (version 4) UUID, made "
            "fresh for each registration (e.g. Python's uuid.uuid4()): it is the only "
            "secret that ties a retry to its registration",
        )
    return key.lower()
