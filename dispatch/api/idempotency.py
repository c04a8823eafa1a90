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
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from dispatch.api.errors import ApiError


def fingerprint(method: str, path: str, caller: str, body: str) -> str:
    """The request a command id stands for: route, caller and the validated body."""
    digest = hashlib.sha256()
    for part in (method, path, caller, body):
        digest.update(part.encode())
        digest.update(b"\x1f")
    return digest.hexdigest()


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
