"""Clients that drive keyed writes through the HTTP API and remember every one (fault 5,
issue #16: an API process killed with writes outstanding).

Each client works as an app would, one write at a time, each with its own
``Idempotency-Key``: it registers a driver, takes them online and offline twice, registers a
rider and requests a ride for them, and starts over. A write answered 202 (no outcome in
time) is sent again with the same key and body until it has a final answer. A write whose
connection drops (the API died under it) ends the client. A stopped client starts no new
write, nor sends a 202 again: stopped just before the API is killed, the writes then in
flight are the outstanding ones. ``Write`` keeps what is needed to
send it again after a restart and to find it in the log: the command id the engine records
it under is the API's caller-scoped key (``dispatch.api.writes.keyed_id``).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

CONFIRMED = frozenset({200, 201})
PENDING = 202
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_RESENDS = 30  # of a write answered 202 (each waits the API's command timeout)


@dataclass
class Write:
    """One keyed write: what to send, under which command id the engine records it, and
    every answer it got (``None``: the connection dropped or never opened)."""

    kind: str  # the command type the engine records (register_driver, go_online, ...)
    path: str
    key: str
    body: dict[str, Any] | None
    auth: dict[str, str]
    command_id: str
    answers: list[int | None] = field(default_factory=list)
    confirmed_at: float | None = None  # monotonic time of its 200/201
    retry_answers: list[int] = field(default_factory=list)  # after the restart
    replayed: bool | None = None  # the retry's Idempotent-Replayed header

    @property
    def confirmed(self) -> bool:
        return any(a in CONFIRMED for a in self.answers)

    @property
    def retried(self) -> bool:
        """Whether a retry after the restart was confirmed."""
        return bool(self.retry_answers) and self.retry_answers[-1] in CONFIRMED

    @property
    def headers(self) -> dict[str, str]:
        return {**self.auth, "Idempotency-Key": self.key}


def send(http: httpx.Client, write: Write, stop: threading.Event) -> httpx.Response | None:
    """Send ``write`` until it has a final answer (202s are sent again while ``stop`` is
    not set); None when the connection failed or the client stopped with no final answer."""
    for _ in range(MAX_RESENDS):
        if write.answers and stop.is_set():
            return None
        try:
            r = http.post(write.path, json=write.body, headers=write.headers)
        except httpx.TransportError:
            write.answers.append(None)
            return None
        write.answers.append(r.status_code)
        if r.status_code in CONFIRMED and write.confirmed_at is None:
            write.confirmed_at = time.monotonic()
        if r.status_code != PENDING:
            return r
    return None


def retry(http: httpx.Client, write: Write, deadline: float) -> None:
    """Send ``write`` again (same key, body and caller) until a final answer or the
    deadline; note the answers and whether the first outcome was replayed."""
    while time.monotonic() < deadline:
        try:
            r = http.post(write.path, json=write.body, headers=write.headers)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        write.retry_answers.append(r.status_code)
        if r.status_code != PENDING:
            write.replayed = r.headers.get(REPLAYED_HEADER) == "true"
            return


def place(client: int, round_: int) -> dict[str, float]:
    """A home in San Francisco, different for each client and round (homes hash to every
    shard)."""
    k = client * 7919 + round_ * 104_729
    return {"lat": 37.70 + (k % 17) * 0.006, "lng": -122.50 + (k // 17 % 19) * 0.006}


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['token']['access_token']}"}


def registration(kind: str, path: str, body: dict[str, Any]) -> Write:
    key = str(uuid.uuid4())
    role = kind.removeprefix("register_")
    return Write(kind, path, key, body, {}, f"register-{role}:{key}")


def by(caller: str, auth: dict[str, str], kind: str, path: str, body: Any = None) -> Write:
    key = str(uuid.uuid4())
    return Write(kind, path, key, body, auth, f"{caller}:{key}")


@dataclass
class Client:
    """One app's worth of writes, on its own thread and connection."""

    number: int
    base_url: str
    stop: threading.Event
    writes: list[Write] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _do(self, http: httpx.Client, write: Write) -> httpx.Response | None:
        """Send ``write`` unless the client is stopping; its confirmed answer, or None."""
        if self.stop.is_set():
            return None
        with self.lock:
            self.writes.append(write)
        r = send(http, write, self.stop)
        return r if r is not None and r.status_code in CONFIRMED else None

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30.0) as http:
            round_ = 0
            while not self.stop.is_set():
                if not self._round(http, self.number, round_):
                    return
                round_ += 1

    def _round(self, http: httpx.Client, n: int, i: int) -> bool:
        """One driver and one rider; False when a write had no final 200/201 answer."""
        home = place(n, i)
        d = self._do(
            http, registration("register_driver", "/drivers", {"name": f"d{n}.{i}", "home": home})
        )
        if d is None:
            return False
        driver, dauth = d.json()["driver_id"], bearer(d.json())
        for kind in ("go_online", "go_offline", "go_online", "go_offline"):
            path = f"/drivers/{driver}/{kind.removeprefix('go_')}"
            if self._do(http, by(driver, dauth, kind, path)) is None:
                return False
        r = self._do(
            http, registration("register_rider", "/riders", {"name": f"r{n}.{i}", "home": home})
        )
        if r is None:
            return False
        rider, rauth = r.json()["rider_id"], bearer(r.json())
        dropoff = {"lat": home["lat"] + 0.01, "lng": home["lng"] + 0.01}
        ride = by(rider, rauth, "request_ride", "/rides", {"pickup": home, "dropoff": dropoff})
        return self._do(http, ride) is not None


def run_clients(
    base_url: str, count: int, stop: threading.Event
) -> tuple[list[Client], list[threading.Thread]]:
    """Start ``count`` clients, each on its own thread; they run until ``stop`` is set or
    their connection fails."""
    clients = [Client(n, base_url, stop) for n in range(count)]
    threads = [threading.Thread(target=c.run, name=f"client-{c.number}") for c in clients]
    for t in threads:
        t.start()
    return clients, threads


def confirmed_rate(writes: list[Write], start: float, end: float) -> float:
    """Writes confirmed (200/201) per second between ``start`` and ``end`` (monotonic)."""
    n = sum(1 for w in writes if w.confirmed_at is not None and start <= w.confirmed_at <= end)
    return n / (end - start) if end > start else 0.0
