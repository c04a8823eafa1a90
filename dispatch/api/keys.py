"""Token settings, read from ``DISPATCH_AUTH_*``: the signing keys and the token lifetimes.

The keys are either one secret (``DISPATCH_AUTH_SECRET``, key id ``default``) or a ring
(``DISPATCH_AUTH_KEYS``, a JSON object ``{"<kid>": "<secret>", ...}``, or the same object in
the file ``DISPATCH_AUTH_KEYS_FILE``) with ``DISPATCH_AUTH_SIGNING_KEY`` naming the one
that signs. Outside development every key must be a real one: at least 32 characters, not
a placeholder, and an estimated strength of at least ``MIN_SECRET_BITS``. No error, log
line or ``repr`` ever shows a key.
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

DEFAULT_KID = "default"  # the key id of DISPATCH_AUTH_SECRET
KID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
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


def _weakness(raw: str) -> str:
    return (
        f"a placeholder, shorter than {MIN_SECRET_LENGTH} characters or under "
        f"{MIN_SECRET_BITS:g} bits of estimated strength (it has about {secret_bits(raw):.0f})"
    )


class AuthSettings(BaseSettings):
    """The token keys and lifetimes. ``token_ttl_s`` is the access token's lifetime (it was
    the only token's before refresh tokens: a deployment that set it keeps its value);
    ``refresh_token_ttl_s`` the refresh token's, at least as long."""

    model_config = SettingsConfigDict(
        env_prefix="DISPATCH_AUTH_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    secret: SecretStr = SecretStr("change-me")
    keys: dict[str, SecretStr] = Field(default_factory=dict)
    keys_file: Path | None = None
    signing_key: str | None = None
    token_ttl_s: int = Field(default=900, ge=60, le=90 * 86_400)
    refresh_token_ttl_s: int = Field(default=30 * 86_400, ge=60, le=365 * 86_400)
    environment: Literal["development", "production"] = "development"

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
            if not KID_PATTERN.match(kid):
                raise ValueError(
                    f"DISPATCH_AUTH_KEYS: key id {kid[:70]!r} is not 1 to 64 letters, digits, "
                    "'.', '_' or '-'"
                )
        kids = ", ".join(sorted(self.ring_keys))
        if self.signing_key is None and len(self.ring_keys) > 1:
            raise ValueError(
                f"DISPATCH_AUTH_SIGNING_KEY must name the key that signs: one of {kids}"
            )
        if self.signing_kid not in self.ring_keys:
            raise ValueError(
                f"DISPATCH_AUTH_SIGNING_KEY {self.signing_kid[:70]!r} names no key of the ring "
                f"(its keys: {kids})"
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
                    f"DISPATCH_AUTH_KEYS: key {kid!r} is too weak: {_weakness(raw)}; refusing "
                    f"to run in {self.environment}. {_ADVICE}"
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
    def weak_keys(self) -> list[str]:
        """The ids of the keys too weak for production (development accepts them)."""
        return sorted(kid for kid, raw in self.ring_keys.items() if is_weak(raw))

    @property
    def weak_secret(self) -> bool:
        return bool(self.weak_keys)
