"""The client address a registration limit counts: the peer, or X-Forwarded-For's nearest
untrusted hop when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import Request

from dispatch.api.errors import ApiError
from dispatch.api.ratelimit import RateLimits, client_address
from dispatch.api.settings import ApiLimits

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


def request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.1", ["198.51.100.7"], "203.0.113.1"),  # untrusted peer: header ignored
        ("10.0.0.2", ["198.51.100.7"], "198.51.100.7"),
        ("10.0.0.2", ["1.2.3.4, 198.51.100.7, 10.0.0.9"], "198.51.100.7"),  # proxy chain
        ("10.0.0.2", ["1.2.3.4", "198.51.100.7"], "198.51.100.7"),  # two header lines
        ("10.0.0.2", [], "10.0.0.2"),  # no header: the proxy itself
        ("10.0.0.2", ["not-an-ip, 10.0.0.7"], "10.0.0.7"),  # garbage: last trusted hop
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("10.0.0.2", ["10.0.0.3, 10.0.0.4"], "10.0.0.3"),  # only proxies: the farthest
    ],
)
def test_the_client_is_the_nearest_untrusted_hop(
    peer: str, forwarded: list[str], client: str
) -> None:
    assert client_address(request(peer, *forwarded), PROXIES) == client


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address(request("10.0.0.2", "198.51.100.7"), ()) == "10.0.0.2"


def test_an_ipv4_proxy_seen_through_a_dual_stack_socket_is_still_trusted() -> None:
    """Served on ``::``, an IPv4 peer arrives as ``::ffff:a.b.c.d``: the proxy was not
    recognised and every client behind it shared the proxy's one registration budget."""
    assert client_address(request("::ffff:10.0.0.2", "198.51.100.7"), PROXIES) == "198.51.100.7"
    assert client_address(request("::ffff:203.0.113.1"), ()) == "203.0.113.1"


def test_the_addresses_of_one_ipv6_network_share_a_registration_limit() -> None:
    """A host has a whole /64 to itself: counting each IPv6 address on its own gave one
    client 2^64 registration budgets."""
    rate = RateLimits(ApiLimits.model_validate({"rate_limit_registrations_per_min": 1}))
    rate.registration(request("2001:db8:1:2::1"))
    with pytest.raises(ApiError) as refused:
        rate.registration(request("2001:db8:1:2:ffff::9"))
    assert refused.value.status == 429
    rate.registration(request("2001:db8:1:3::1"))  # another network
    rate.registration(request("203.0.113.1"))
    rate.registration(request("203.0.113.2"))  # IPv4: one address each
