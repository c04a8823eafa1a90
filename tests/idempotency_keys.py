"""Idempotency keys that tell their age, for the tests (Python 3.11 has no uuid.uuid7)."""

from __future__ import annotations

import uuid
from datetime import datetime


def uuid7(at: datetime) -> uuid.UUID:
    """A version-7 UUID (RFC 9562) made at ``at``: its unix milliseconds, then random bits."""
    ms = int(at.timestamp() * 1000)
    value = (ms << 80) | (uuid.uuid4().int & ((1 << 80) - 1))
    value = (value & ~(0xF << 76)) | (7 << 76)  # version
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant
    return uuid.UUID(int=value)
