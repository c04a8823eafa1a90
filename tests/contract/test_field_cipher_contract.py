"""The field cipher port (``dispatch.privacy.FieldCipher``): the same cases over every
adapter (AES-GCM on pyca/cryptography)."""

from __future__ import annotations

import os

import pytest

from dispatch.privacy import KEY_BYTES, DamagedValue, FieldCipher


def _aesgcm() -> FieldCipher:
    from dispatch.adapters.crypto.aesgcm import AesGcmCipher

    return AesGcmCipher()


@pytest.fixture(params=["aesgcm"])
def cipher(request: pytest.FixtureRequest) -> FieldCipher:
    return {"aesgcm": _aesgcm}[request.param]()


KEY = os.urandom(KEY_BYTES)


def test_a_sealed_value_opens_to_its_plaintext(cipher: FieldCipher) -> None:
    sealed = cipher.seal(KEY, b"Ada Lovelace", b"aad")
    assert b"Ada" not in sealed
    assert cipher.open(KEY, sealed, b"aad") == b"Ada Lovelace"


def test_sealing_twice_gives_two_ciphertexts(cipher: FieldCipher) -> None:
    assert cipher.seal(KEY, b"same", b"aad") != cipher.seal(KEY, b"same", b"aad")


def test_other_associated_data_does_not_open(cipher: FieldCipher) -> None:
    sealed = cipher.seal(KEY, b"[51.5,-0.12]", b"pf1|a|pickup")
    with pytest.raises(DamagedValue):
        cipher.open(KEY, sealed, b"pf1|a|dropoff")


def test_another_key_does_not_open(cipher: FieldCipher) -> None:
    sealed = cipher.seal(KEY, b"x", b"aad")
    with pytest.raises(DamagedValue):
        cipher.open(os.urandom(KEY_BYTES), sealed, b"aad")


@pytest.mark.parametrize("at", [0, 12, -1])
def test_a_changed_byte_does_not_open(cipher: FieldCipher, at: int) -> None:
    sealed = bytearray(cipher.seal(KEY, b"Ada Lovelace", b"aad"))
    sealed[at] ^= 1
    with pytest.raises(DamagedValue):
        cipher.open(KEY, bytes(sealed), b"aad")


def test_a_value_cut_short_does_not_open(cipher: FieldCipher) -> None:
    with pytest.raises(DamagedValue):
        cipher.open(KEY, b"short", b"aad")
