"""Odd but possible requests get a clear 4xx or a sane default, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

from api_world import World

from dispatch.api.routers.streams import _after


def chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def test_a_chunked_body_over_the_limit_is_refused_with_413(world: World) -> None:
    driver = world.ids["driver_a"]
    big = b'{"pings": [' + b" " * (2 << 20) + b"]}"  # no Content-Length: sent chunked
    r = world.client.post(
        f"/drivers/{driver}/locations",
        content=chunks(big),
        headers={**world.tokens["driver_a"], "Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large"


def test_a_chunked_body_under_the_limit_is_read_whole(world: World) -> None:
    driver = world.ids["driver_a"]
    body = b'{"lat": 37.7755, "lng": -122.4185}'
    r = world.client.post(
        f"/drivers/{driver}/location",
        content=chunks(body, 5),
        headers={**world.tokens["driver_a"], "Content-Type": "application/json"},
    )
    assert r.status_code == 202, r.text


def test_a_last_event_id_with_non_ascii_digits_starts_from_the_beginning() -> None:
    assert _after("0:²") == 0
    assert _after("0:١٢") == 0
    assert _after("0:12") == 12
