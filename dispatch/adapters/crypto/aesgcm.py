"""``FieldCipher`` on pyca/cryptography's AES-GCM: a 256-bit key, a fresh random 96-bit
nonce per value (stored in front of the ciphertext and its 128-bit tag)."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dispatch.privacy import KEY_BYTES, DamagedValue, FieldCipher

NONCE_BYTES = 12
TAG_BYTES = 16


class AesGcmCipher(FieldCipher):
    def seal(self, key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        _check(key)
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)

    def open(self, key: bytes, sealed: bytes, aad: bytes) -> bytes:
        _check(key)
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise DamagedValue(f"a sealed value of {len(sealed)} bytes is too short")
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, body, aad)
        except InvalidTag:
            raise DamagedValue("the value does not authenticate under its key") from None


def _check(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"a key is {KEY_BYTES} bytes, not {len(key)}")
