"""The apps' token refreshes: one at a time per account, spread over the accounts, and a
failed one neither kills the app nor is retried at once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatch.adapters.http.client import Reply
from dispatch.simulator.apps.accounts import Account, AccountError, Accounts


class Refresher:
    """Stands in for the API client: answers each refresh with ``status``."""

    def __init__(self, status: int) -> None:
        self.status, self.calls = status, 0

    async def call(self, *args: Any, **kwargs: Any) -> Reply:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.status != 200:
            return Reply(self.status, {"reason": "more than 20 refresh attempts a minute"}, 1)
        soon = (datetime.now(UTC) + timedelta(seconds=900)).isoformat()
        issued = {"access_token": f"new-{self.calls}", "refresh_token": "r2",
                  "expires_at": soon}  # fmt: skip
        return Reply(200, issued, 1)


def due(name: str = "7d1f0f4e-4b0e-4a43-9a3c-1c1a3b7c9d10") -> Account:
    now = time.time()
    return Account("driver", name, (37.7, -122.4), "old", now + 10, now - 890, "r1")


def test_apps_of_one_account_share_one_refresh() -> None:
    client = Refresher(200)
    accounts = Accounts(client)  # type: ignore[arg-type]
    account = due()

    async def many() -> list[str]:
        return await asyncio.gather(*(accounts.token(account) for _ in range(5)))

    assert asyncio.run(many()) == ["new-1"] * 5 and client.calls == 1


def test_a_failed_refresh_keeps_the_token_counts_and_waits_before_trying_again() -> None:
    client = Refresher(429)
    accounts = Accounts(client)  # type: ignore[arg-type]
    account = due()
    assert asyncio.run(accounts.token(account)) == "old"
    assert asyncio.run(accounts.token(account)) == "old"
    assert client.calls == 1 and accounts.refresh_failures == 1
    with pytest.raises(AccountError, match="refresh attempts"):
        account.retry_at = 0.0
        asyncio.run(accounts.token(account, strict=True))


def test_accounts_signed_in_together_are_due_at_different_times() -> None:
    now = time.time()
    dues = set()
    for i in range(50):
        account = Account("rider", f"0000000{i:x}-0000-4000-8000-000000000000", (0, 0),
                          "t", now + 900, now, "r")  # fmt: skip
        first = next(t for t in range(0, 900, 5) if account.stale(now + t))
        dues.add(first)
    assert min(dues) >= 540 and max(dues) <= 720 and len(dues) > 10
