"""Per-client rate limits (moving windows), and the client's address.

Registrations and refresh attempts are limited by the client's address (each its own count,
of the same size), every authenticated request by its caller (role and subject). A refused
request is a 429 with ``Retry-After``. The counters live in this process: each API instance
enforces its own limits. A client is forgotten as soon as its window has passed, so what
the limits keep is bounded by the clients of the last window, not by every client ever
seen.

Why not the ``limits`` library: its in-memory storage keeps an entry for every key ever
seen and a timer rescans them all every 10 ms (measured here: 20,000 callers gone for a
second still held 5.7 MB; at 200,000 keys a scan took 1.5 s and a hit 120 us). For a
shared store across API instances its Redis storage would be the one to use.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.requests import Request

from dispatch.api.errors import ApiError
from dispatch.api.settings import ApiLimits, Network

UNKNOWN_CLIENT = "unknown"


class MovingWindow:
    """At most ``amount`` hits per key in any ``window_s`` seconds.

    Keys are kept in the order they were last hit; each hit drops the keys at the front
    whose last hit is older than the window, so no idle key outlives its window."""

    def __init__(
        self, amount: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.amount, self.window_s, self._clock = amount, window_s, clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Count a hit of ``key``: 0 if allowed, else the seconds until one would be."""
        now = self._clock()
        horizon = now - self.window_s
        with self._lock:
            while self._hits:
                oldest = next(iter(self._hits.values()))
                if oldest[-1] > horizon:
                    break
                self._hits.popitem(last=False)
            hits = self._hits.pop(key, None) or deque()
            self._hits[key] = hits  # now the most recently hit
            while hits and hits[0] <= horizon:
                hits.popleft()
            if len(hits) >= self.amount:
                return hits[0] - horizon
            hits.append(now)
            return 0.0

    def __len__(self) -> int:
        return len(self._hits)


class RateLimits:
    def __init__(self, limits: ApiLimits) -> None:
        per_min, per_s = limits.rate_limit_registrations_per_min, limits.rate_limit_requests_per_s
        self._registrations = MovingWindow(per_min, 60.0) if per_min else None
        self._refreshes = MovingWindow(per_min, 60.0) if per_min else None
        self._requests = MovingWindow(per_s, 1.0) if per_s else None
        self._proxies = limits.trusted_proxies

    def registration(self, request: Request) -> None:
        """Count a registration from the request's client address; 429 over the limit."""
        if self._registrations is not None:
            address = address_key(client_address(request, self._proxies))
            _hit(self._registrations, address, "registrations a minute")

    def refresh(self, request: Request) -> None:
        """Count a refresh attempt (valid or not: a forged one too) from the request's client
        address; 429 over the limit."""
        if self._refreshes is not None:
            address = address_key(client_address(request, self._proxies))
            _hit(self._refreshes, address, "refresh attempts a minute")

    def caller(self, role: str, subject: str) -> None:
        """Count a request of an authenticated caller; 429 over the limit."""
        if self._requests is not None:
            _hit(self._requests, f"{role}:{subject}", "requests a second")


def _hit(window: MovingWindow, key: str, what: str) -> None:
    wait = window.hit(key)
    if wait <= 0:
        return
    retry = max(1, math.ceil(wait))
    raise ApiError(
        429,
        "rate_limited",
        f"more than {window.amount} {what}; retry in {retry} s",
        {"Retry-After": str(retry)},
    )


def client_address(request: Request, proxies: tuple[Network, ...]) -> str:
    """The peer's address; when the peer is a trusted proxy, the nearest address in
    ``X-Forwarded-For`` that is not itself a trusted proxy (read from the right, where each
    trusted proxy appended the address it saw). An IPv4 address seen through an IPv6 socket
    (``::ffff:a.b.c.d``) is that IPv4 address."""
    peer = _canonical(request.client.host) if request.client is not None else UNKNOWN_CLIENT
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    nearest = peer
    for hop in reversed([h for h in hops if h]):
        address = _canonical(hop)
        if _ip(address) is None:
            return nearest  # not an address: the last trusted hop is all we know
        if not _trusted(address, proxies):
            return address
        nearest = address
    return nearest


def address_key(address: str) -> str:
    """What a per-address limit counts: an IPv4 address, or the /64 network of an IPv6 one
    (a host is given a whole /64, so each of its addresses would be a budget of its own)."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _canonical(address: str) -> str:
    ip = _ip(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in network for network in proxies)
