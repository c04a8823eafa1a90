"""Per-client rate limits (moving windows, the ``limits`` library), and the client's address.

Registrations are limited by the client's address, every authenticated request by its
caller (role and subject). A refused request is a 429 with ``Retry-After``. The counters
live in this process: each API instance enforces its own limits.
"""

from __future__ import annotations

import ipaddress
import math
import time

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from dispatch.api.errors import ApiError
from dispatch.api.settings import ApiLimits, Network

UNKNOWN_CLIENT = "unknown"


class RateLimits:
    def __init__(self, limits: ApiLimits) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        per_min, per_s = limits.rate_limit_registrations_per_min, limits.rate_limit_requests_per_s
        self._registrations = RateLimitItemPerMinute(per_min) if per_min else None
        self._requests = RateLimitItemPerSecond(per_s) if per_s else None
        self._proxies = limits.trusted_proxies

    def registration(self, request: Request) -> None:
        """Count a registration from the request's client address; 429 over the limit."""
        if self._registrations is not None:
            address = client_address(request, self._proxies)
            self._hit(self._registrations, "registration", address, "registrations")

    def caller(self, role: str, subject: str) -> None:
        """Count a request of an authenticated caller; 429 over the limit."""
        if self._requests is not None:
            self._hit(self._requests, "caller", f"{role}:{subject}", "requests")

    def _hit(self, item: RateLimitItemPerSecond | RateLimitItemPerMinute, *key: str) -> None:
        kind = key[-1]
        if self._limiter.hit(item, *key[:-1]):
            return
        reset = self._limiter.get_window_stats(item, *key[:-1]).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"more than {item.amount} {kind} a {item.GRANULARITY.name}; retry in {wait} s",
            {"Retry-After": str(wait)},
        )


def client_address(request: Request, proxies: tuple[Network, ...]) -> str:
    """The peer's address; when the peer is a trusted proxy, the nearest address in
    ``X-Forwarded-For`` that is not itself a trusted proxy (read from the right, where each
    trusted proxy appended the address it saw)."""
    peer = request.client.host if request.client is not None else UNKNOWN_CLIENT
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    nearest = peer
    for hop in reversed([h for h in hops if h]):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return nearest  # not an address: the last trusted hop is all we know
        if not _trusted(address, proxies):
            return address
        nearest = address
    return nearest


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)
