"""``KeyWrap`` on pyca/cryptography's AES-GCM: each subject key encrypted under a 256-bit
key-encryption key (KEK) with a fresh 96-bit nonce, bound to its subject and key id
(``privacy.wrap_aad``). Several KEKs by id: new keys are wrapped under the current one,
keys wrapped under any of them are read (a KEK is rotated by adding a new one as current,
rewrapping, then removing the old: docs/PRIVACY.md, "Wrapped keys")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dispatch.privacy import (
    KEY_BYTES,
    KeyWrap,
    KeyWrapError,
    StoredKey,
    SubjectKey,
    plain_key,
    wrap_aad,
)

NONCE_BYTES = 12
TAG_BYTES = 16


class AesGcmKeyWrap(KeyWrap):
    def __init__(self, keks: Mapping[str, bytes], current: str) -> None:
        if current not in keks:
            raise ValueError(f"the current key-encryption key {current!r} is not among them")
        for kek_id, kek in keks.items():
            if len(kek) != KEY_BYTES:
                raise ValueError(f"key-encryption key {kek_id!r} is {len(kek)} bytes, not 32")
        self._aead = {kek_id: AESGCM(kek) for kek_id, kek in keks.items()}
        self._current = current

    @property
    def current(self) -> str | None:
        return self._current

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self._aead)

    def wrap(self, key: SubjectKey) -> StoredKey:
        nonce = os.urandom(NONCE_BYTES)
        body = self._aead[self._current].encrypt(nonce, key.key, wrap_aad(key.subject, key.kid))
        return StoredKey(self._current, nonce + body)

    def unwrap(self, subject: UUID, kid: str, stored: StoredKey) -> bytes:
        if stored.kek is None:
            return plain_key(subject, stored.blob)
        aead = self._aead.get(stored.kek)
        if aead is None:
            raise KeyWrapError(
                f"the key of subject {subject} is wrapped under key-encryption key "
                f"{stored.kek!r}, which is not configured (DISPATCH_KEY_ENCRYPTION_KEYS has "
                f"{', '.join(sorted(self._aead))})"
            )
        if len(stored.blob) != NONCE_BYTES + KEY_BYTES + TAG_BYTES:
            raise KeyWrapError(f"the wrapped key of subject {subject} is damaged (its size)")
        nonce, body = stored.blob[:NONCE_BYTES], stored.blob[NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, body, wrap_aad(subject, kid))
        except InvalidTag:
            raise KeyWrapError(
                f"the wrapped key of subject {subject} does not authenticate under "
                f"key-encryption key {stored.kek!r} (another key under that id, or damage)"
            ) from None
