"""The key-wrapping port (``dispatch.privacy.KeyWrap``): the same cases over every adapter,
no key-encryption key (``NoWrap``) and AES-GCM under configured ones; then what only a
wrapping adapter does."""

from __future__ import annotations

import os

import pytest

from dispatch.domain.ids import new_id
from dispatch.privacy import KeyWrap, KeyWrapError, NoWrap, StoredKey, new_subject_key

KEK_A, KEK_B = os.urandom(32), os.urandom(32)


def _aesgcm(**keks: bytes) -> KeyWrap:
    from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap

    return AesGcmKeyWrap(keks, next(iter(keks)))


@pytest.fixture(params=["none", "aesgcm"])
def wrap(request: pytest.FixtureRequest) -> KeyWrap:
    return NoWrap() if request.param == "none" else _aesgcm(a=KEK_A)


def test_a_wrapped_key_unwraps_to_itself(wrap: KeyWrap) -> None:
    key = new_subject_key(new_id(0))
    kept = wrap.wrap(key)
    assert kept.kek == wrap.current
    assert wrap.unwrap(key.subject, key.kid, kept) == key.key


def test_a_key_kept_as_it_is_is_read_as_it_is(wrap: KeyWrap) -> None:
    key = new_subject_key(new_id(1))
    assert wrap.unwrap(key.subject, key.kid, StoredKey(None, key.key)) == key.key
    with pytest.raises(KeyWrapError, match="bytes"):
        wrap.unwrap(key.subject, key.kid, StoredKey(None, key.key[:20]))


def test_a_key_under_a_kek_not_configured_is_refused_naming_it(wrap: KeyWrap) -> None:
    key = new_subject_key(new_id(0))
    stored = _aesgcm(elsewhere=KEK_B).wrap(key)
    with pytest.raises(KeyWrapError, match="'elsewhere'"):
        wrap.unwrap(key.subject, key.kid, stored)


# -- what a wrapping adapter does ------------------------------------------------------------
def test_a_wrapped_key_holds_nothing_of_the_key_and_differs_each_time() -> None:
    wrap, key = _aesgcm(a=KEK_A), new_subject_key(new_id(0))
    one, two = wrap.wrap(key), wrap.wrap(key)
    assert key.key not in one.blob and one.blob != two.blob
    assert wrap.known == frozenset({"a"}) and one.kek == "a"


def test_a_wrapped_key_moved_to_another_subject_or_key_id_does_not_unwrap() -> None:
    wrap, key = _aesgcm(a=KEK_A), new_subject_key(new_id(0))
    kept = wrap.wrap(key)
    with pytest.raises(KeyWrapError, match="does not authenticate"):
        wrap.unwrap(new_id(0), key.kid, kept)
    with pytest.raises(KeyWrapError, match="does not authenticate"):
        wrap.unwrap(key.subject, "0" * 16, kept)
    damaged = StoredKey("a", kept.blob[:-1] + bytes([kept.blob[-1] ^ 1]))
    with pytest.raises(KeyWrapError, match="does not authenticate"):
        wrap.unwrap(key.subject, key.kid, damaged)


def test_several_keks_wrap_under_the_current_and_read_under_any() -> None:
    from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap

    key = new_subject_key(new_id(1))
    older = _aesgcm(a=KEK_A).wrap(key)
    rotated = AesGcmKeyWrap({"a": KEK_A, "b": KEK_B}, "b")
    assert rotated.wrap(key).kek == "b"
    assert rotated.unwrap(key.subject, key.kid, older) == key.key


def test_a_kek_set_that_does_not_hold_its_current_or_a_short_key_is_refused() -> None:
    from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap

    with pytest.raises(ValueError, match="current"):
        AesGcmKeyWrap({"a": KEK_A}, "b")
    with pytest.raises(ValueError, match="16 bytes"):
        AesGcmKeyWrap({"a": KEK_A[:16]}, "a")
