"""Remembered responses of idempotent writes, so a retry gets the same status and body.

The engine is the authority: a retried command id gets its first outcome back and changes
nothing. This cache only lets the API repeat the exact first body (consistency token,
issued token) and spot a key reused for a different request. Bounded, per process.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Remembered:
    fingerprint: str
    status: int
    body: dict[str, Any]


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class ResponseCache:
    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._items: OrderedDict[str, Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, command_id: str) -> Remembered | None:
        with self._lock:
            found = self._items.get(command_id)
            if found is not None:
                self._items.move_to_end(command_id)
            return found

    def put(self, command_id: str, remembered: Remembered) -> None:
        with self._lock:
            self._items.setdefault(command_id, remembered)
            self._items.move_to_end(command_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
