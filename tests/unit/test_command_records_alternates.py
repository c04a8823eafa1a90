"""A command's record on the commands topic carries its fingerprint alternates only when it
has some (``wire.encode_command``): one without is written as before them, so a worker of
the version before reads it; one with them reads back whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

from dispatch.adapters.kafka import wire
from schemas import commands as c

DRIVER = UUID("00010000-0000-4000-8000-000000000001")


def envelope(alternates: tuple[str, ...]) -> c.CommandEnvelope:
    return c.CommandEnvelope(
        command_id="d:k", fingerprint="f2.k1." + "0" * 64, fingerprint_alternates=alternates,
        issued_at=datetime(2026, 1, 1, tzinfo=UTC), command=c.GoOnline(driver_id=DRIVER),
    )  # fmt: skip


def test_a_command_without_alternates_is_written_as_before_them() -> None:
    _, value = wire.encode_command(envelope(()))
    assert "fingerprint_alternates" not in json.loads(value)
    assert wire.decode_command(value, "commands/0@1") == envelope(())


def test_a_command_with_alternates_reads_back_with_them() -> None:
    sent = envelope(("f2.k0." + "1" * 64, "a" * 64))
    _, value = wire.encode_command(sent)
    assert wire.decode_command(value, "commands/0@1") == sent


def request(**sharing: object) -> c.CommandEnvelope:
    place = {"lat": 37.77, "lng": -122.42}
    return c.CommandEnvelope(
        command_id="r:k", issued_at=datetime(2026, 1, 1, tzinfo=UTC),
        command=c.RequestRide(ride_id=DRIVER, rider_id=DRIVER, pickup=place, dropoff=place,
                              **sharing),  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_single_ride_request_is_written_as_before_shared_rides_and_a_shared_one_whole() -> None:
    _, value = wire.encode_command(request())
    assert {"shared", "seats"}.isdisjoint(json.loads(value)["command"])
    assert wire.decode_command(value, "commands/0@1") == request()
    sent = request(shared=True, seats=2)
    _, value = wire.encode_command(sent)
    assert json.loads(value)["command"]["seats"] == 2
    assert wire.decode_command(value, "commands/0@1") == sent
