"""The keys of request fingerprints (``dispatch.api.idempotency``): HKDF-SHA256 as RFC 5869
defines it, one key per token key with its own label, and the alternates a retry sends."""

from __future__ import annotations

import hashlib
import hmac

from dispatch.api.idempotency import (
    FINGERPRINT_LABEL,
    Fingerprinter,
    hkdf_sha256,
    legacy_fingerprint,
)

REQUEST = ("POST", "/rides", "rider-1", '{"pickup":[37.77,-122.42]}')


def test_the_key_derivation_is_rfc_5869_hkdf_sha256() -> None:
    """RFC 5869, test case 3: no salt, no info."""
    okm = hkdf_sha256(b"\x0b" * 22, b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_a_fingerprint_is_an_hmac_under_a_key_derived_from_the_signing_key() -> None:
    printed = Fingerprinter({"a": "secret-a", "b": "secret-b"}, "b", legacy=False).of(*REQUEST)
    key = hkdf_sha256(b"secret-b", FINGERPRINT_LABEL + b"|b")
    message = b"".join(part.encode() + b"\x1f" for part in REQUEST)
    assert printed.primary == "f2.b." + hmac.new(key, message, hashlib.sha256).hexdigest()
    assert key != b"secret-b" and legacy_fingerprint(*REQUEST) not in printed.primary


def test_the_alternates_are_the_other_keys_fingerprints_and_the_legacy_hash_if_accepted() -> None:
    keys = {"a": "secret-a", "b": "secret-b"}
    under_a = Fingerprinter(keys, "a", legacy=False).of(*REQUEST).primary
    printed = Fingerprinter(keys, "b", legacy=True).of(*REQUEST)
    assert printed.alternates == (under_a, legacy_fingerprint(*REQUEST))
    assert Fingerprinter(keys, "b", legacy=False).of(*REQUEST).alternates == (under_a,)


def test_another_caller_or_body_gives_another_fingerprint() -> None:
    printer = Fingerprinter({"a": "secret-a"}, "a", legacy=False)
    first = printer.of(*REQUEST).primary
    assert printer.of("POST", "/rides", "rider-2", REQUEST[3]).primary != first
    assert printer.of("POST", "/rides", "rider-1", "{}").primary != first


def test_a_ring_larger_than_the_alternates_allow_is_refused_at_start_naming_the_setting() -> None:
    """Review L2: 17 keys (16 others and the legacy hash) would make every keyed write a
    500; the settings refuse the ring instead, and 16 keys are taken."""
    import pytest
    from pydantic import SecretStr

    from dispatch.api import AuthSettings

    def ring(n: int) -> dict[str, SecretStr]:
        return {f"k{i}": SecretStr(f"key-{i}-" + "x" * 40) for i in range(n)}

    with pytest.raises(ValueError, match="DISPATCH_AUTH_KEYS holds 17 keys; at most 16"):
        AuthSettings(keys=ring(17), signing_key="k0", environment="development")
    taken = AuthSettings(keys=ring(16), signing_key="k0", environment="development")
    printed = Fingerprinter(taken.ring_keys, "k0", taken.accept_legacy_fingerprints)
    assert len(printed.of(*REQUEST).alternates) == 16
    without_legacy = AuthSettings(
        keys=ring(17),
        signing_key="k0",
        environment="development",
        accept_legacy_fingerprints=False,
    )
    assert len(without_legacy.ring_keys) == 17
