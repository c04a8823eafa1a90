"""What a run against a deployment is asked to do, and the target it may be aimed at."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dispatch.simulator.runner import DEFAULT_DEMAND_SHARE

PROFILES = ("flat", "ramp", "rush")


@dataclass(frozen=True)
class ApiRunConfig:
    url: str
    drivers: int = 50
    minutes: float = 2.0
    seed: int = 7
    demand_per_min: float | None = None  # default: as in-process, a balanced market
    profile: str = "flat"  # the request rate over the run (``profile.py``)
    open_loop: bool = False  # sends go at their planned times, not after the last answer
    city_km: float = 10.0
    centre: tuple[float, float] = (37.77, -122.42)  # the deployment's first market's
    speed_kmh: float = 25.0  # the simulated vehicles' real pace
    ping_every_s: float = 4.0  # a driver app sends its fixes (one a second) this often
    accept_probability: float = 0.85
    cancel_probability: float = 0.05
    response_delay_s: tuple[float, float] = (2.0, 8.0)
    boarding_s: float = 10.0
    drain_s: float = 120.0  # after the run's minutes, for the rides in flight to end
    cleanup: bool = True  # at the end: rides not started cancelled, trips ended, offline
    credentials: Path | None = None  # saved accounts to reuse (and to save into)
    connections: int = 256  # the pool of connections for calls (streams have their own)

    @property
    def demand(self) -> float:
        if self.demand_per_min is not None:
            return self.demand_per_min
        return self.drivers * DEFAULT_DEMAND_SHARE

    @property
    def warmup_s(self) -> float:
        """The run's first seconds left out of the steady figures: a fifth, at most 60 s."""
        return min(60.0, self.minutes * 60.0 / 5.0)

    @property
    def trip_mean_m(self) -> float:
        return min(4_000.0, self.city_km * 250.0)  # a quarter of the city's side at most


class TargetRefused(ValueError):
    """The URL is not one this run may load."""


def check_target(url: str, allow_remote: bool) -> str:
    """``url`` without a trailing slash, if it is http(s) with a host, and that host is a
    loopback address (by name or number; a name must resolve to loopback only) unless
    ``allow_remote``: a load test aimed at someone else's service by a typo is an attack."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"{url!r}: not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise TargetRefused(f"{url!r}: the deployment's base URL has no query or fragment")
    if not allow_remote and not _loopback(parts.hostname):
        raise TargetRefused(
            f"{parts.hostname} is not a loopback address: a load test of another machine "
            "needs --allow-remote"
        )
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in found}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
