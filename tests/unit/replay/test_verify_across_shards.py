"""`replay verify` checks what shards tell one another over all shards together: each
kind of violation in a two-shard log crafted to contain it, and none in a sound one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from dispatch.domain.ids import new_id
from dispatch.log import LogEvent, LogSource
from dispatch.replay.operations import verify
from dispatch.shard.links import link_id

T0 = 1_767_600_000.0
H, R = 0, 1


class TwoShardLog(LogSource):
    def __init__(self) -> None:
        self.events: dict[int, list[LogEvent]] = {H: [], R: []}
        self.versions: dict[str, int] = {}
        self.heads: dict[int, int] = {}  # a head below the end: events still being written

    def add(self, shard: int, agg: UUID, kind: str, /, **data: Any) -> TwoShardLog:
        key = str(agg)
        self.versions[key] = v = self.versions.get(key, 0) + 1
        events = self.events[shard]
        events.append(LogEvent(shard, len(events) + 1, key, v, f"dispatch.{kind}", T0, data))
        return self

    def shards(self) -> list[int]:
        return [H, R]

    def read(self, shard: int, after: int = 0) -> Iterator[LogEvent]:
        return iter([e for e in self.events[shard] if e.position > after])

    def head(self, shard: int) -> int:
        return self.heads.get(shard, len(self.events[shard]))

    def stored_events(self, shard: int, aggregate_id: UUID) -> list[StoredEvent]:
        return []

    def close(self) -> None:
        pass


class Story:
    """A rider of H and a ride at R, written step by step as the engine would."""

    def __init__(self) -> None:
        self.log = TwoShardLog()
        self.rider, self.ride = new_id(H), new_id(R)
        self.seq = {(H, R): 0, (R, H): 0}
        self.log.add(H, self.rider, "Rider.Registered", name="r")

    def send(self, sender: int, receiver: int, kind: str) -> Story:
        self.seq[(sender, receiver)] += 1
        seq = self.seq[(sender, receiver)]
        link = link_id(sender, receiver)
        if seq == 1:
            self.log.add(sender, link, "Link.Opened", peer=receiver)
        body = {"ride": str(self.ride), "rider": str(self.rider)}
        self.log.add(sender, link, "Link.Sent", peer=receiver, seq=seq, kind=kind, body=body)
        return self

    def apply(self, receiver: int, sender: int, seq: int) -> Story:
        link = link_id(receiver, sender)
        if link not in {UUID(e.aggregate_id) for e in self.log.events[receiver]}:
            self.log.add(receiver, link, "Link.Opened", peer=sender)
        self.log.add(receiver, link, "Link.Applied", seq=seq)
        return self

    def lock(self) -> Story:
        self.log.add(H, self.rider, "Rider.RideRequested", ride_id=str(self.ride))
        return self.send(H, R, "OpenRide")

    def open(self) -> Story:
        self.log.add(R, self.ride, "Ride.Requested", rider_id=str(self.rider),
                     pickup=[37.3, -121.9], dropoff=[37.34, -121.88], expires_at="x")  # fmt: skip
        return self.apply(R, H, 1)

    def cancel(self) -> Story:
        self.log.add(R, self.ride, "Ride.CancelledByRider", reason="")
        return self.send(R, H, "UnlockRider")

    def unlock(self, outcome: str = "cancelled") -> Story:
        self.log.add(H, self.rider, "Rider.RideEnded", ride_id=str(self.ride), outcome=outcome)
        return self.apply(H, R, 1)


def kinds(story: Story) -> list[str]:
    return [v.kind for v in verify(story.log)[1]]


@pytest.mark.parametrize(
    "steps",
    [
        ["lock"],  # the OpenRide on its way
        ["lock", "open"],  # a live ride holding its lock
        ["lock", "open", "cancel"],  # the UnlockRider on its way
        ["lock", "open", "cancel", "unlock"],
    ],
)
def test_every_stage_of_a_ride_across_shards_is_sound(steps: list[str]) -> None:
    story = Story()
    for step in steps:
        getattr(story, step)()
    assert kinds(story) == []


def test_a_ride_opened_without_its_riders_lock_is_flagged() -> None:
    story = Story().send(H, R, "OpenRide").open()  # no Rider.RideRequested at H
    assert kinds(story) == ["ride_without_lock"]


def test_a_lock_for_a_ride_that_never_opens_and_no_message_on_its_way_is_flagged() -> None:
    story = Story().lock().apply(R, H, 1)  # applied, yet no ride opened
    assert kinds(story) == ["lock_without_ride"]


def test_a_lock_not_let_go_after_the_ride_ended_is_flagged() -> None:
    story = Story().lock().open().cancel().apply(H, R, 1)  # applied, rider still locked
    assert kinds(story) == ["lock_not_released"]


def test_a_lock_let_go_while_the_ride_is_active_is_flagged() -> None:
    story = Story().lock().open()
    story.log.add(H, story.rider, "Rider.RideEnded", ride_id=str(story.ride), outcome="completed")
    assert kinds(story) == ["lock_released_early"]


def test_a_rider_told_another_ending_than_the_rides_is_flagged() -> None:
    story = Story().lock().open().cancel().unlock(outcome="completed")
    assert kinds(story) == ["ending_mismatch"]


def test_a_message_applied_twice_or_never_sent_is_flagged() -> None:
    story = Story().lock().open().apply(R, H, 1)
    assert "message_gap" in kinds(story)
    story = Story().lock().open().apply(R, H, 2)
    assert kinds(story) == ["message_applied_unsent"]


def assigned_across(story: Story, driver: UUID, held: bool, ride: UUID | None = None) -> None:
    """R's ride accepted by a driver H owns; H holds it for the ride if ``held``."""
    ride = ride or story.ride
    expires = "2026-01-05T08:00:15+00:00"
    if ride == story.ride:
        story.lock().open()
    story.log.add(R, ride, "Ride.DriverAsked", driver_id=str(driver), resv=f"{ride}/1",
                  pickup_eta_s=60.0, distance_m=400.0)  # fmt: skip
    story.log.add(R, ride, "Ride.Offered", driver_id=str(driver), offer_expires_at=expires,
                  pickup_eta_s=60.0, distance_m=400.0)  # fmt: skip
    story.log.add(R, ride, "Ride.Accepted", driver_id=str(driver))
    if story.log.versions.get(str(driver)) is None:
        story.log.add(H, driver, "Driver.Registered", name="d")
        story.log.add(H, driver, "Driver.WentOnline")
    if held:
        story.log.add(H, driver, "Driver.OfferReceived", ride_id=str(ride), expires_at=expires,
                      resv=f"{ride}/1")  # fmt: skip
        story.log.add(H, driver, "Driver.Assigned", ride_id=str(ride))


ACROSS = {"driver_not_held", "driver_in_two_rides"}


def test_a_ride_counting_on_a_driver_its_owner_holds_for_it_is_sound() -> None:
    story = Story()
    assigned_across(story, new_id(H), held=True)
    assert kinds(story) == []


def test_a_ride_counting_on_a_driver_its_owner_does_not_hold_is_flagged() -> None:
    story = Story()
    assigned_across(story, new_id(H), held=False)
    assert kinds(story) == ["driver_not_held"]


def test_two_rides_counting_on_one_driver_are_flagged() -> None:
    story, driver = Story(), new_id(H)
    assigned_across(story, driver, held=True)
    assigned_across(story, driver, held=False, ride=new_id(R))  # never held for it
    # (the ride's shard sees the second offer too: its own check flags it as well)
    assert {k for k in kinds(story) if k in ACROSS} == ACROSS


def test_a_log_still_being_written_is_checked_as_of_the_heads_when_verify_began() -> None:
    story = Story().lock().open()
    heads = {H: story.log.head(H), R: story.log.head(R)}  # verify begins here
    story.cancel().unlock()  # both shards write on while it reads
    # read as "R up to then, H to its end" (R read first, H later), H's unlock shows
    # without the cancel at R that caused it:
    story.log.heads = {R: heads[R]}
    assert "lock_released_early" in kinds(story)
    # every shard up to the head it had when verify began: sound
    story.log.heads = heads
    assert kinds(story) == []
