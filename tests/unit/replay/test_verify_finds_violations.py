"""`replay verify` finds each kind of violation in a log crafted to contain it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from memory_log import MemoryLog

from dispatch.domain.ids import new_id
from dispatch.log import LogEvent
from dispatch.replay.operations import verify

T0 = 1_767_600_000.0


class CraftedLog(MemoryLog):
    """An in-memory log source: one shard, events as written by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: dict[str, int] = {}

    def add(
        self, agg: UUID, kind: str, at: float = T0, version: int | None = None, **data: Any
    ) -> CraftedLog:
        key = str(agg)
        v = version if version is not None else self.versions.get(key, 0) + 1
        self.versions[key] = v
        self.events.append(LogEvent(0, len(self.events) + 1, key, v, f"dispatch.{kind}", at, data))
        return self


def iso(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).isoformat()


def a_ride_offered(
    log: CraftedLog, ride: UUID, driver: UUID, rider: UUID, at: float = T0
) -> CraftedLog:
    log.add(rider, "Rider.Registered", name="r")
    log.add(driver, "Driver.Registered", name="d").add(driver, "Driver.WentOnline")
    log.add(
        ride,
        "Ride.Requested",
        rider_id=str(rider),
        pickup=[37.7, -122.4],
        dropoff=[37.8, -122.4],
        expires_at=iso(at + 300),
    )
    log.add(rider, "Rider.RideRequested", ride_id=str(ride))
    log.add(
        ride,
        "Ride.Offered",
        at=at,
        driver_id=str(driver),
        offer_expires_at=iso(at + 15),
        pickup_eta_s=60.0,
        distance_m=400.0,
    )
    log.add(driver, "Driver.OfferReceived", at=at, ride_id=str(ride), expires_at=iso(at + 15))
    return log


def kinds(log: CraftedLog) -> list[str]:
    return [v.kind for v in verify(log)[1]]


def test_a_clean_ride_from_request_to_completion_has_no_violation() -> None:
    ride, driver, rider = new_id(0), new_id(0), new_id(0)
    log = a_ride_offered(CraftedLog(), ride, driver, rider)
    log.add(ride, "Ride.Accepted", driver_id=str(driver))
    log.add(driver, "Driver.Assigned", ride_id=str(ride))
    log.add(ride, "Ride.DriverArrived", driver_id=str(driver))
    log.add(ride, "Ride.TripStarted", driver_id=str(driver))
    log.add(driver, "Driver.TripStarted", ride_id=str(ride))
    log.add(ride, "Ride.Completed", driver_id=str(driver))
    log.add(driver, "Driver.Released", ride_id=str(ride), reason="completed")
    log.add(rider, "Rider.RideEnded", ride_id=str(ride), outcome="completed")
    assert kinds(log) == []


def test_a_version_gap_is_found() -> None:
    driver = new_id(0)
    log = CraftedLog().add(driver, "Driver.Registered", name="d")
    log.add(driver, "Driver.WentOnline", version=3)
    assert kinds(log) == ["version_gap"]


def test_a_repeated_version_is_found() -> None:
    driver = new_id(0)
    log = CraftedLog().add(driver, "Driver.Registered", name="d").add(driver, "Driver.WentOnline")
    log.add(driver, "Driver.WentOffline", version=2)
    assert "version_gap" in kinds(log)


def test_an_illegal_ride_transition_is_found() -> None:
    ride, rider = new_id(0), new_id(0)
    log = CraftedLog().add(
        ride,
        "Ride.Requested",
        rider_id=str(rider),
        pickup=[0, 0],
        dropoff=[0, 0],
        expires_at=iso(T0 + 300),
    )
    log.add(ride, "Ride.TripStarted", driver_id=str(new_id(0)))
    assert kinds(log) == ["illegal_transition"]


def test_an_illegal_driver_transition_is_found() -> None:
    driver = new_id(0)
    log = CraftedLog().add(driver, "Driver.Registered", name="d")
    log.add(driver, "Driver.TripStarted", ride_id=str(new_id(0)))
    assert kinds(log) == ["illegal_transition"]


def test_a_driver_offered_a_second_ride_while_holding_one_is_found() -> None:
    first, second, driver, rider, rider2 = (new_id(0) for _ in range(5))
    log = a_ride_offered(CraftedLog(), first, driver, rider)
    log.add(rider2, "Rider.Registered", name="r2")
    log.add(
        second,
        "Ride.Requested",
        rider_id=str(rider2),
        pickup=[0, 0],
        dropoff=[0, 0],
        expires_at=iso(T0 + 300),
    )
    log.add(
        second,
        "Ride.Offered",
        driver_id=str(driver),
        offer_expires_at=iso(T0 + 15),
        pickup_eta_s=1.0,
        distance_m=1.0,
    )
    assert "driver_in_two_rides" in kinds(log)


def test_a_ride_accepted_by_a_driver_it_was_not_offered_to_is_found() -> None:
    ride, driver, rider = new_id(0), new_id(0), new_id(0)
    log = a_ride_offered(CraftedLog(), ride, driver, rider)
    log.add(ride, "Ride.Accepted", driver_id=str(new_id(0)))
    # ... which no shard has assigned to it either
    assert kinds(log) == ["ride_with_two_drivers", "driver_not_held"]


def test_a_ride_accepted_at_the_home_shard_of_a_driver_served_elsewhere_is_checked() -> None:
    """A driver handed off from shard 0 to shard 1 is accepted by a ride of shard 0 that
    no shard holds it for: found, though the driver's id names the ride's shard."""
    ride, driver, rider = new_id(0), new_id(0), new_id(0)
    log = CraftedLog()
    log.add(rider, "Rider.Registered", name="r")
    log.add(ride, "Ride.Requested", rider_id=str(rider), pickup=[37.77, -122.42],
            dropoff=[37.78, -122.41], expires_at="2026-01-05T09:00:00+00:00")  # fmt: skip
    log.add(ride, "Ride.Accepted", driver_id=str(driver))
    assert "driver_not_held" in kinds(log)


def test_an_offer_never_closed_after_its_expiry_is_found() -> None:
    ride, driver, rider = new_id(0), new_id(0), new_id(0)
    log = a_ride_offered(CraftedLog(), ride, driver, rider)
    other = new_id(0)
    log.add(other, "Driver.Registered", at=T0 + 60, name="later")
    assert kinds(log) == ["unresolved_offer"]


def test_an_offer_still_within_its_expiry_at_the_end_of_the_log_is_fine() -> None:
    ride, driver, rider = new_id(0), new_id(0), new_id(0)
    assert kinds(a_ride_offered(CraftedLog(), ride, driver, rider)) == []


def test_a_command_with_two_outcomes_is_found() -> None:
    log = CraftedLog()
    for _ in range(2):
        log.add(
            new_id(0),
            "CommandRecord.Handled",
            command_id="c-1",
            command_type="go_online",
            accepted=True,
            code="ok",
            reason="",
            aggregate_ids=[],
        )
    assert kinds(log) == ["duplicate_outcome"]


def test_a_rider_with_two_active_rides_is_found() -> None:
    rider = new_id(0)
    log = CraftedLog().add(rider, "Rider.Registered", name="r")
    log.add(rider, "Rider.RideRequested", ride_id=str(new_id(0)))
    log.add(rider, "Rider.RideRequested", ride_id=str(new_id(0)))
    assert kinds(log) == ["rider_with_two_rides"]


def test_each_violation_names_its_position_in_the_log() -> None:
    driver = new_id(0)
    log = CraftedLog().add(driver, "Driver.Registered", name="d")
    log.add(driver, "Driver.WentOnline", version=5)
    (violation,) = verify(log)[1]
    assert violation.position == "0:2" and violation.aggregate_id == str(driver)


def test_a_revocation_that_does_not_raise_the_token_version_is_found() -> None:
    credentials, rider = new_id(0), str(new_id(0))
    log = CraftedLog().add(
        credentials, "Credentials.Opened", principal_id=rider, principal_role="rider"
    )
    who = {"principal_id": rider, "principal_role": "rider", "reason": ""}
    log.add(credentials, "Credentials.TokensRevoked", token_version=1, **who)
    log.add(credentials, "Credentials.TokensRevoked", token_version=3, **who)
    assert kinds(log) == []  # a version may skip (a token minted above it)
    log.add(credentials, "Credentials.TokensRevoked", token_version=3, **who)
    assert kinds(log) == ["token_version_not_raised"]
