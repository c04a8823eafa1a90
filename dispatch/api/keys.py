"""Token settings, read from ``DISPATCH_AUTH_*``: the signing keys, the token lifetimes and
the revocation bound (``DISPATCH_AUTH_REVOCATION_BOUND_S``, ``dispatch.api.revocation``).

The keys are either one secret (``DISPATCH_AUTH_SECRET``, key id ``default``) or a ring
(``DISPATCH_AUTH_KEYS``, a JSON object ``{"<kid>": "<secret>", ...}``, or the same object in
the file ``DISPATCH_AUTH_KEYS_FILE``) with ``DISPATCH_AUTH_SIGNING_KEY`` naming the one
that signs. No key may be empty; outside development every key must be a real one: at
least 32 characters, not a placeholder, and an estimated strength of at least
``MIN_SECRET_BITS``. No error, log line or ``repr`` ever shows a key, and an error shows a
key id longer than ``SHOWN_KID`` characters only by its first few (a ring written the
wrong way round has its keys where the ids belong). While the secret is the only key and
``DISPATCH_AUTH_ACCEPT_LEGACY_TOKENS`` is true, tokens of the format before JWTs signed with
it are taken until they expire (``legacy_secret``; to be removed in a later release).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from zxcvbn import zxcvbn

from dispatch.tokens import KeyRing
from schemas.commands import MAX_FINGERPRINT_ALTERNATES

DEFAULT_KID = "default"  # the key id of DISPATCH_AUTH_SECRET
MAX_KID_LENGTH = 32
KID_PATTERN = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_KID_LENGTH}}}")  # the whole id (fullmatch)
SHOWN_KID = 12  # an error shows a longer key id by its first 6 characters only
DEFAULT_TOKEN_TTL_S = 900
DEFAULT_REFRESH_TOKEN_TTL_S = 30 * 86_400
LEGACY_DEFAULT_TTL_S = 86_400  # the token lifetime's default before JWTs
# How stale an API instance's views of a principal's shard may be, and it still take the
# principal's tokens: a revocation reaches every instance within this (docs/SECURITY.md).
DEFAULT_REVOCATION_BOUND_S = 10.0
MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 100.0
_ESTIMATED_PREFIX = 72  # zxcvbn reads at most this many characters
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "change_me", "changethis", "secret", "development", "dev"}
)
_ADVICE = "Use random values, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`."


def secret_bits(raw: str) -> float:
    """A secret's estimated strength in bits: log2 of the guesses zxcvbn says an attacker
    needs (repeats, sequences, keyboard walks and words count for little). Estimated over
    its first 72 characters."""
    raw = raw[:_ESTIMATED_PREFIX]
    if not raw:
        return 0.0
    return float(zxcvbn(raw)["guesses_log10"]) * math.log2(10)


def is_weak(raw: str) -> bool:
    if raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < MIN_SECRET_LENGTH:
        return True
    return secret_bits(raw) < MIN_SECRET_BITS


def shown_kid(kid: str) -> str:
    """A key id as an error may show it: whole up to ``SHOWN_KID`` characters, else its first
    6 and ``...`` (a long "id" may be a key put in the wrong place)."""
    text = kid if len(kid) <= SHOWN_KID else f"{kid[:6]}..."
    return repr(text.encode("ascii", "replace").decode())


def _weakness(raw: str) -> str:
    return (
        f"a placeholder, shorter than {MIN_SECRET_LENGTH} characters or under "
        f"{MIN_SECRET_BITS:g} bits of estimated strength (it has about {secret_bits(raw):.0f})"
    )


class AuthSettings(BaseSettings):
    """The token keys and lifetimes. ``token_ttl_s`` is the access token's lifetime (it was
    the only token's before refresh tokens: a deployment that set it keeps its value);
    ``refresh_token_ttl_s`` the refresh token's, at least as long: unset, 30 days, or the
    access token's lifetime if that is longer."""

    model_config = SettingsConfigDict(
        env_prefix="DISPATCH_AUTH_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    secret: SecretStr = SecretStr("change-me")
    keys: dict[str, SecretStr] = Field(default_factory=dict)
    keys_file: Path | None = None
    signing_key: str | None = None
    # take tokens of the format before JWTs (while the ring is DISPATCH_AUTH_SECRET alone)
    accept_legacy_tokens: bool = True
    # also match a retry against a command record of before fingerprints were keyed (a
    # plain SHA-256, sent as an alternate): turn off once an idempotency window has passed
    # since the upgrade (``dispatch.api.idempotency``)
    accept_legacy_fingerprints: bool = True
    token_ttl_s: int = Field(default=DEFAULT_TOKEN_TTL_S, ge=60, le=90 * 86_400)
    # unset: 30 days, or the access token's lifetime if that is longer (``_defaults``)
    refresh_token_ttl_s: int = Field(default=DEFAULT_REFRESH_TOKEN_TTL_S, ge=60, le=365 * 86_400)
    environment: Literal["development", "production"] = "development"
    # An instance whose views of the shard keeping a principal's token version last read
    # that shard to its end longer ago than this refuses the principal's tokens (503): it
    # cannot tell whether they were revoked since.
    revocation_bound_s: float = Field(default=DEFAULT_REVOCATION_BOUND_S, ge=1.0, le=3_600.0)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """An empty ``DISPATCH_AUTH_SIGNING_KEY`` or ``DISPATCH_AUTH_REFRESH_TOKEN_TTL_S`` is
        unset (several keys and an empty signing key is an error, not the first key). An
        unset refresh lifetime is 30 days, or the access token's if that is longer: a
        deployment that had set ``DISPATCH_AUTH_TOKEN_TTL_S`` over 30 days (up to 90 were
        allowed) still starts, its refresh tokens as long-lived as its access tokens."""
        if not isinstance(data, dict):
            return data
        empty = {"signing_key", "refresh_token_ttl_s"}
        data = {k: v for k, v in data.items() if not (k in empty and v in ("", None))}
        if "refresh_token_ttl_s" in data:
            return data
        try:
            access = int(data.get("token_ttl_s", DEFAULT_TOKEN_TTL_S))
        except (TypeError, ValueError):
            return data  # the field's own validation says what is wrong with it
        return {**data, "refresh_token_ttl_s": max(DEFAULT_REFRESH_TOKEN_TTL_S, access)}

    @model_validator(mode="before")
    @classmethod
    def _read_keys_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("keys_file") in (None, ""):
            return data
        if data.get("keys"):
            raise ValueError("set DISPATCH_AUTH_KEYS or DISPATCH_AUTH_KEYS_FILE, not both")
        path = Path(data["keys_file"])
        try:
            keys = json.loads(path.read_text())
        except OSError as error:
            raise ValueError(f"DISPATCH_AUTH_KEYS_FILE {path}: {error.strerror}") from None
        except ValueError:
            raise ValueError(f"DISPATCH_AUTH_KEYS_FILE {path}: not a JSON object") from None
        if not isinstance(keys, dict):
            raise ValueError(f"DISPATCH_AUTH_KEYS_FILE {path}: not a JSON object")
        return {**data, "keys": keys}

    @model_validator(mode="after")
    def _check_keys(self) -> AuthSettings:
        if self.keys and "secret" in self.model_fields_set:
            raise ValueError(
                "set DISPATCH_AUTH_SECRET (one key) or DISPATCH_AUTH_KEYS (a key ring), not both"
            )
        for kid in self.keys:
            if not KID_PATTERN.fullmatch(kid):
                raise ValueError(
                    f"DISPATCH_AUTH_KEYS: key id {shown_kid(kid)} is not 1 to {MAX_KID_LENGTH} "
                    "letters, digits, '.', '_' or '-' (is the object the wrong way round? "
                    'it maps ids to keys: {"<kid>": "<key>"})'
                )
        for kid, raw in self.ring_keys.items():
            if not raw:
                name = "DISPATCH_AUTH_SECRET" if not self.keys else f"key {shown_kid(kid)}"
                raise ValueError(f"{name} is empty: every key must be a random value. {_ADVICE}")
        kids = ", ".join(shown_kid(kid) for kid in sorted(self.ring_keys))
        if self.signing_key is None and len(self.ring_keys) > 1:
            raise ValueError(
                f"DISPATCH_AUTH_SIGNING_KEY must name the key that signs: one of {kids}"
            )
        if self.signing_kid not in self.ring_keys:
            raise ValueError(
                f"DISPATCH_AUTH_SIGNING_KEY {shown_kid(self.signing_kid)} names no key of the ring "
                f"(its keys: {kids})"
            )
        alternates = len(self.ring_keys) - 1 + int(self.accept_legacy_fingerprints)
        if alternates > MAX_FINGERPRINT_ALTERNATES:
            most = MAX_FINGERPRINT_ALTERNATES + 1 - int(self.accept_legacy_fingerprints)
            raise ValueError(
                f"DISPATCH_AUTH_KEYS holds {len(self.ring_keys)} keys; at most {most} with "
                f"DISPATCH_AUTH_ACCEPT_LEGACY_FINGERPRINTS={self.accept_legacy_fingerprints} "
                f"(a keyed write sends a fingerprint under every other key, at most "
                f"{MAX_FINGERPRINT_ALTERNATES} alternates): remove keys that stopped signing "
                "more than an idempotency window ago"
            )
        if self.refresh_token_ttl_s < self.token_ttl_s:
            raise ValueError(
                "DISPATCH_AUTH_REFRESH_TOKEN_TTL_S must be at least DISPATCH_AUTH_TOKEN_TTL_S"
            )
        if self.environment != "development":
            self._refuse_weak_keys()
        return self

    def _refuse_weak_keys(self) -> None:
        if not self.keys and is_weak(raw := self.secret.get_secret_value()):
            raise ValueError(
                f"DISPATCH_AUTH_SECRET is too weak: {_weakness(raw)}; refusing to run in "
                f"{self.environment}. {_ADVICE}"
            )
        for kid, secret in sorted(self.keys.items()):
            if is_weak(raw := secret.get_secret_value()):
                raise ValueError(
                    f"DISPATCH_AUTH_KEYS: key {shown_kid(kid)} is too weak: {_weakness(raw)}; "
                    f"refusing to run in {self.environment}. {_ADVICE}"
                )

    @property
    def ring_keys(self) -> dict[str, str]:
        if self.keys:
            return {kid: secret.get_secret_value() for kid, secret in self.keys.items()}
        return {DEFAULT_KID: self.secret.get_secret_value()}

    @property
    def signing_kid(self) -> str:
        """The key that signs: ``DISPATCH_AUTH_SIGNING_KEY``, or the only key there is."""
        return self.signing_key or next(iter(self.ring_keys))

    def key_ring(self) -> KeyRing:
        return KeyRing(self.ring_keys, self.signing_kid)

    @property
    def legacy_secret(self) -> str | None:
        """The key tokens of the format before JWTs are verified with: the secret, while it
        is the only key (no ring) and ``DISPATCH_AUTH_ACCEPT_LEGACY_TOKENS`` is true."""
        if self.keys or not self.accept_legacy_tokens:
            return None
        return self.secret.get_secret_value()

    @property
    def legacy_token_ttl_s(self) -> int:
        """The longest a token of the previous format may still have to live: the access
        lifetime, or the previous default (a day) if that is longer."""
        return max(self.token_ttl_s, LEGACY_DEFAULT_TTL_S)

    @property
    def weak_keys(self) -> list[str]:
        """The ids of the keys too weak for production (development accepts them)."""
        return sorted(kid for kid, raw in self.ring_keys.items() if is_weak(raw))

    @property
    def weak_secret(self) -> bool:
        return bool(self.weak_keys)
