"""The apps' accounts: registered through the API (or read from a saved file), each with
its tokens, refreshed before they expire as an app refreshes them.

A credentials file (``--credentials``) holds each account's id, home and refresh token, so
a second run signs in again instead of registering a new city. (Refresh attempts are
limited per address like registrations, in a window of their own: reuse saves the
registrations, not the limit.) It is written with mode 0600: its refresh tokens get tokens
for the accounts.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dispatch.adapters.http.client import ApiClient, Reply

REFRESH_AHEAD = 0.2  # refresh when 20-40 % of an access token's life is left
REFRESH_RETRY_S = 5.0  # after a failed refresh
FORMAT = 1


class AccountError(RuntimeError):
    """An account could not be made or signed in (the reason says what the API answered)."""


@dataclass
class Account:
    role: str  # "driver" or "rider"
    id: str
    home: tuple[float, float]
    access_token: str = ""
    expires_at: float = 0.0  # epoch seconds (0: no access token yet)
    issued_at: float = 0.0
    refresh_token: str = ""
    retry_at: float = 0.0  # after a failed refresh: not tried again before this
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)

    def take(self, issued: dict[str, Any]) -> None:
        self.access_token = issued["access_token"]
        self.refresh_token = issued["refresh_token"]
        self.expires_at = datetime.fromisoformat(issued["expires_at"]).timestamp()
        self.issued_at = time.time()

    def stale(self, now: float) -> bool:
        """Due for a refresh: within 20-40 % of its life from its end, the share the
        account's own (accounts signed in together do not all refresh at once)."""
        life = max(1.0, self.expires_at - self.issued_at)
        ahead = REFRESH_AHEAD * (1.0 + (zlib.crc32(self.id.encode()) % 1000) / 1000.0)
        return now >= self.expires_at - ahead * life

    def saved(self) -> dict[str, Any]:
        return {"role": self.role, "id": self.id, "home": list(self.home),
                "refresh_token": self.refresh_token}  # fmt: skip


class Accounts:
    """Registers accounts and keeps their tokens fresh, over one ``ApiClient``."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.refresh_failures = 0  # refreshes that failed during the run (see ``token``)

    async def register(self, role: str, name: str, home: tuple[float, float]) -> Account:
        """A new driver or rider, under an Idempotency-Key (a retry gets the same one)."""
        body = {"name": name, "home": {"lat": home[0], "lng": home[1]}}
        path = "/drivers" if role == "driver" else "/riders"
        reply = await self.client.call(
            "POST", f"POST {path}", path, planned_at=time.monotonic(), json=body,
            key=str(uuid.uuid4()),
        )  # fmt: skip
        if reply.status != 201:
            raise AccountError(f"registering a {role}: {_said(reply)}")
        account = Account(role, str(reply.body[f"{role}_id"]), home)
        account.take(reply.body["token"])
        return account

    async def token(self, account: Account, strict: bool = False) -> str:
        """The account's access token, refreshed first when it is due (one refresh at a
        time per account). A refresh that fails raises ``AccountError`` when ``strict`` or
        when there is no token at all; else it is counted, tried again after
        ``REFRESH_RETRY_S``, and the token in hand is used (the server says 401 if it has
        expired, and the report shows it by endpoint)."""
        now = time.time()
        if account.access_token and (not account.stale(now) or now < account.retry_at):
            return account.access_token
        async with account.lock:
            if account.access_token and not account.stale(time.time()):
                return account.access_token  # refreshed while this one waited
            reply = await self.client.call(
                "POST", "POST /auth/refresh", "/auth/refresh", planned_at=time.monotonic(),
                json={"refresh_token": account.refresh_token}, repeatable=True,
            )  # fmt: skip
            if reply.status == 200:
                account.take(reply.body)
                return account.access_token
            if strict or not account.access_token:
                raise AccountError(
                    f"refreshing {account.role} {account.id}'s token: {_said(reply)}"
                )
            self.refresh_failures += 1
            account.retry_at = time.time() + REFRESH_RETRY_S
            return account.access_token


def _said(reply: Reply) -> str:
    reason = reply.body.get("reason") or reply.body.get("error") or reply.body
    return f"{reply.status or 'no answer'} after {reply.attempts} attempt(s): {reason}"


def load(path: Path) -> list[Account]:
    """The accounts saved in ``path`` (none when it does not exist yet)."""
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a credentials file of format {FORMAT}")
        return [
            Account(a["role"], str(uuid.UUID(a["id"])), (float(a["home"][0]),
                    float(a["home"][1])), refresh_token=str(a["refresh_token"]))
            for a in doc["accounts"]
            if a["role"] in ("driver", "rider")
        ]  # fmt: skip
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise AccountError(f"{path}: damaged credentials file ({error})") from None


def save(path: Path, accounts: list[Account]) -> None:
    """Write ``accounts`` to ``path`` (mode 0600), replacing it whole: through a new file
    of a name no one can guess beside it (never one already there, nor a link), synced."""
    doc = {"format": FORMAT, "accounts": [a.saved() for a in accounts]}
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
