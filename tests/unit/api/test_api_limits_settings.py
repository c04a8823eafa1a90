"""Every limit docs/SECURITY.md names is read from its DISPATCH_* variable."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from dispatch.api.settings import ApiLimits


def test_every_limit_is_read_from_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "DISPATCH_RATE_LIMIT_REGISTRATIONS_PER_MIN": "7",
        "DISPATCH_RATE_LIMIT_REQUESTS_PER_S": "9",
        "DISPATCH_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7",
        "DISPATCH_MAX_BODY_BYTES": "4096",
        "DISPATCH_HEADER_TIMEOUT_S": "3",
        "DISPATCH_BODY_TIMEOUT_S": "4",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    limits = ApiLimits()

    assert (limits.rate_limit_registrations_per_min, limits.rate_limit_requests_per_s) == (7, 9)
    assert limits.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.7/32"),
    )
    assert (limits.max_body_bytes, limits.header_timeout_s, limits.body_timeout_s) == (4096, 3, 4)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DISPATCH_TRUSTED_PROXIES", "not-a-network"),
        ("DISPATCH_RATE_LIMIT_REQUESTS_PER_S", "-1"),
        ("DISPATCH_HEADER_TIMEOUT_S", "0"),
        ("DISPATCH_MAX_BODY_BYTES", "10"),
    ],
)
def test_a_meaningless_limit_is_refused_with_its_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("DISPATCH_").lower()):
        ApiLimits()
