"""The apps' accounts: registered through the API (or read from a saved file), each with
its tokens, refreshed before they expire as an app refreshes them.

A credentials file (``--credentials``) holds each account's id, home and refresh token, so
a second run signs in again instead of registering a new city. (Refresh attempts are
limited per address like registrations, in a window of their own: reuse saves the
registrations, not the limit.) It is written with mode 0600: its refresh tokens get tokens
for the accounts.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dispatch.adapters.http.client import ApiClient, Reply

REFRESH_AHEAD = 0.2  # refresh when this share of an access token's life is left
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

    def take(self, issued: dict[str, Any]) -> None:
        self.access_token = issued["access_token"]
        self.refresh_token = issued["refresh_token"]
        self.expires_at = datetime.fromisoformat(issued["expires_at"]).timestamp()
        self.issued_at = time.time()

    def stale(self, now: float) -> bool:
        life = max(1.0, self.expires_at - self.issued_at)
        return now >= self.expires_at - REFRESH_AHEAD * life

    def saved(self) -> dict[str, Any]:
        return {"role": self.role, "id": self.id, "home": list(self.home),
                "refresh_token": self.refresh_token}  # fmt: skip


class Accounts:
    """Registers accounts and keeps their tokens fresh, over one ``ApiClient``."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

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

    async def token(self, account: Account) -> str:
        """The account's access token, refreshed first when it is near its end."""
        if account.access_token and not account.stale(time.time()):
            return account.access_token
        reply = await self.client.call(
            "POST", "POST /auth/refresh", "/auth/refresh", planned_at=time.monotonic(),
            json={"refresh_token": account.refresh_token}, repeatable=True,
        )  # fmt: skip
        if reply.status != 200:
            raise AccountError(f"refreshing {account.role} {account.id}'s token: {_said(reply)}")
        account.take(reply.body)
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
