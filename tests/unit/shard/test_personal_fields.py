"""The shard application's sealing mapper (``dispatch.shard.personal``): personal fields
are stored sealed under their subject's key, read back in the clear, and read as erased
(never an error) once the key is gone. The engine does not use it yet (docs/PRIVACY.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Snapshot

from dispatch.adapters.crypto.aesgcm import AesGcmCipher
from dispatch.adapters.sqlite.keystore import SqliteKeyStore
from dispatch.domain.geo import Point
from dispatch.domain.ids import new_id
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.index import DriverIndex
from dispatch.matching.matcher import Matcher, MatcherConfig
from dispatch.matching.state import load
from dispatch.matching.strategies import Greedy
from dispatch.privacy import DamagedValue, PersonalData, SubjectErased, is_sealed
from dispatch.shard.application import ShardApplication
from dispatch.shard.personal import LINK_SENT, SNAPSHOT_TOPIC, Sealer
from dispatch.shard.policy import Policy
from schemas import commands as c
from tests.unit.conftest import MAX_WAIT_S, SHARD, Scenario, request_ride

NAME = "Ada Lovelace"
COORDINATES = (b"37.77", b"-122.42", b"37.62", b"-122.38")


class Shard:
    def __init__(self, tmp_path: Path) -> None:
        self.file = tmp_path / "shard.sqlite"
        self.keys = SqliteKeyStore(tmp_path / "subject-keys.sqlite")
        self.apps: list[ShardApplication] = []

    def app(self) -> ShardApplication:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(self.file)}
        sealer = Sealer(PersonalData(AesGcmCipher(), self.keys))
        policy = Policy(max_wait_s=MAX_WAIT_S, erasable=True)
        app = ShardApplication(SHARD, env=env, policy=policy, sealer=sealer)
        self.apps.append(app)
        return app

    def stored(self) -> bytes:
        return self.file.read_bytes()


@pytest.fixture
def shard(tmp_path: Path) -> Iterator[Shard]:
    found = Shard(tmp_path)
    yield found
    for app in found.apps:
        app.close()
    found.keys.close()


def _a_completed_ride(s: Scenario) -> tuple[UUID, UUID, UUID]:
    rider_id = new_id(SHARD)
    s.given(c.RegisterRider(rider_id=rider_id, name=NAME))
    driver_id = new_id(SHARD)
    s.given(c.RegisterDriver(driver_id=driver_id, name="Grace Hopper"))
    s.given(c.GoOnline(driver_id=driver_id))
    ride_id = s.completed(rider_id, driver_id)
    return rider_id, driver_id, ride_id


def test_names_and_ride_coordinates_are_stored_sealed_and_read_back_in_the_clear(
    shard: Shard,
) -> None:
    rider_id, driver_id, ride_id = _a_completed_ride(Scenario(shard.app()))
    stored = shard.stored()
    assert NAME.encode() not in stored and b"Grace Hopper" not in stored
    assert not any(text in stored for text in COORDINATES)
    fresh = shard.app()  # nothing cached: read from the file
    assert fresh.repository.get(rider_id).name == NAME
    assert fresh.repository.get(driver_id).name == "Grace Hopper"
    ride = fresh.repository.get(ride_id)
    assert (ride.pickup, ride.dropoff) == (Point(37.77, -122.42), Point(37.62, -122.38))


def test_the_stored_fields_are_tokens_of_their_subjects(shard: Shard) -> None:
    app = shard.app()
    rider_id, _, ride_id = _a_completed_ride(Scenario(app))
    (requested, *_) = app.recorder.select_events(ride_id)
    state: dict[str, Any] = app.mapper.transcoder.decode(requested.state)
    assert is_sealed(state["pickup"]) and is_sealed(state["dropoff"])
    assert str(rider_id) in state["pickup"]  # the rider's, not the ride's


def test_a_snapshot_holds_tokens_and_reads_back_in_the_clear(shard: Shard) -> None:
    app = shard.app()
    rider_id, _, ride_id = _a_completed_ride(Scenario(app))
    for aggregate_id in (rider_id, ride_id):
        stored = app.mapper.to_stored_event(Snapshot.take(app.repository.get(aggregate_id)))
        assert stored.topic == SNAPSHOT_TOPIC
        assert NAME.encode() not in stored.state
        assert not any(text in stored.state for text in COORDINATES)
        snapshot: Any = app.mapper.to_domain_event(stored)
        assert snapshot.mutate(None).__dict__ == app.repository.get(aggregate_id).__dict__


def test_an_erased_riders_name_and_rides_read_as_erased(shard: Shard) -> None:
    app = shard.app()
    rider_id, driver_id, ride_id = _a_completed_ride(Scenario(app))
    snapshot = app.mapper.to_stored_event(Snapshot.take(app.repository.get(ride_id)))
    shard.keys.erase(rider_id)
    fresh = shard.app()
    assert fresh.repository.get(rider_id).name == "erased"
    ride = fresh.repository.get(ride_id)
    assert (ride.pickup, ride.dropoff, ride.status) == (None, None, "completed")
    assert fresh.mapper.to_domain_event(snapshot).mutate(None).pickup is None
    assert fresh.repository.get(driver_id).name == "Grace Hopper"  # another subject's


def test_an_erased_riders_ride_request_reads_with_no_coordinates_and_is_not_matched(
    shard: Shard,
) -> None:
    app = shard.app()
    s = Scenario(app)
    rider_id = s.rider()
    ride_id = new_id(SHARD)
    s.given(request_ride(ride_id, rider_id))
    shard.keys.erase(rider_id)
    (requested, *_) = shard.app().repository.event_store.get(ride_id)
    assert (requested.pickup, requested.dropoff) == (None, None)
    matcher = _matcher()
    matcher.observe(requested)  # a fold of the log meets it before the ride's end
    assert matcher.pending == {}


def test_a_link_messages_personal_fields_are_sealed_and_opened(shard: Shard) -> None:
    sealer = Sealer(PersonalData(AesGcmCipher(), shard.keys))
    rider, driver = new_id(SHARD), new_id(SHARD)
    open_ride = {"ride": str(new_id(SHARD)), "rider": str(rider), "pickup_lat": 37.77,
                 "pickup_lng": -122.42, "dropoff_lat": 37.62, "dropoff_lng": -122.38,
                 "requested_at": 1.0}  # fmt: skip
    hand_off = {"driver": str(driver), "epoch": 1, "name": "Grace", "trips": 0, "records": []}
    personal = {"OpenRide": ("pickup_lat", "pickup_lng", "dropoff_lat", "dropoff_lng"),
                "HandOff": ("name",)}  # fmt: skip
    for kind, body in (("OpenRide", open_ride), ("HandOff", hand_off)):
        state = {"peer": 2, "seq": 1, "kind": kind, "body": body}
        sealed = sealer.seal_state(LINK_SENT, state, None)
        for name, value in sealed["body"].items():
            assert is_sealed(value) == (name in personal[kind]), name
        sealer.open_state(LINK_SENT, sealed)
        assert sealed == state
    sealed = sealer.seal_state(LINK_SENT, {"kind": "OpenRide", "body": open_ride}, None)
    shard.keys.erase(rider)
    sealer.open_state(LINK_SENT, sealed)
    assert sealed["body"] == {**open_ride, **dict.fromkeys(personal["OpenRide"])}


def test_a_matcher_checkpoint_row_holds_its_pickup_sealed_and_loads_it_back(
    shard: Shard,
) -> None:
    app = shard.app()
    s = Scenario(app)
    rider_id = s.rider()
    ride_id = new_id(SHARD)
    s.given(request_ride(ride_id, rider_id))
    row = (str(ride_id), 37.77, -122.42, 1.0, 2.0, [])
    sealed = app.seal_ride(row)
    assert is_sealed(sealed[1]) and 37.77 not in sealed and -122.42 not in sealed
    assert str(rider_id) in str(sealed[1])  # the rider's key
    matcher = _matcher()
    load(matcher, [sealed], [], [], [], open=app.open_personal)
    assert (matcher.pending[ride_id].lat, matcher.pending[ride_id].lng) == (37.77, -122.42)
    shard.keys.erase(rider_id)
    matcher = _matcher()
    later = shard.app()
    load(matcher, [sealed], [], [], [], open=later.open_personal)
    assert matcher.pending == {}  # its events after the checkpoint end it
    assert later.seal_ride(row)[1:3] == (None, 0.0)  # no key is made again for the rider


def _matcher() -> Matcher:
    return Matcher(DriverIndex[UUID](9, 30.0), StraightLineEta(), Greedy(), MatcherConfig())


def test_a_name_that_looks_like_a_token_is_sealed_and_its_subject_stays_usable(
    shard: Shard,
) -> None:
    """Review finding 1: a client's text starting with ``pf1.`` is sealed like any other;
    after a restart the rider requests a ride and is erased."""
    looks_sealed = "pf1.Zelda Quixotewright"
    s = Scenario(shard.app())
    rider_id = new_id(SHARD)
    s.given(c.RegisterRider(rider_id=rider_id, name=looks_sealed))
    assert b"Zelda" not in shard.stored()
    s.app = shard.app()  # restarted: the rider is read from the file
    assert s.app.repository.get(rider_id).name == looks_sealed
    ride_id = new_id(SHARD)
    s.given(request_ride(ride_id, rider_id))
    s.given(c.CancelRide(ride_id=ride_id, rider_id=rider_id))
    s.app = shard.app()
    s.given(c.EraseRider(rider_id=rider_id, by="self"))
    assert shard.app().repository.get(rider_id).name == "erased"


def test_a_token_copied_into_another_subjects_record_reads_as_erased(shard: Shard) -> None:
    """Review finding 4: a whole token of A placed in B's registration does not open as
    A's name under B (it is damage: read as erased, logged)."""
    app = shard.app()
    s = Scenario(app)
    alice, bob = new_id(SHARD), new_id(SHARD)
    s.given(c.RegisterRider(rider_id=alice, name="Alice"))
    s.given(c.RegisterRider(rider_id=bob, name="Bob"))
    (alice_registered,) = app.recorder.select_events(alice)
    (bob_registered,) = app.recorder.select_events(bob)
    token = app.mapper.transcoder.decode(alice_registered.state)["name"]
    moved = app.mapper.transcoder.decode(bob_registered.state)
    moved["name"] = token
    forged = type(bob_registered)(
        originator_id=bob_registered.originator_id,
        originator_version=bob_registered.originator_version,
        topic=bob_registered.topic,
        state=app.mapper.transcoder.encode(moved),
    )
    assert app.mapper.to_domain_event(forged).name == "erased"  # type: ignore[attr-defined]
    assert app.mapper.to_domain_event(alice_registered).name == "Alice"  # type: ignore[attr-defined]


def test_a_key_erased_while_it_was_being_made_is_not_cached(tmp_path: Path) -> None:
    """Review finding 10: shard 1 makes a subject's key while shard 0 erases the subject;
    the sealer does not cache the made key (later seals would use it) but refuses."""

    class ErasedMeanwhile(SqliteKeyStore):
        def create(self, subject: UUID) -> Any:
            made = super().create(subject)
            self.erase(subject)  # another shard thread's erasure, between make and cache
            return made

    keys = ErasedMeanwhile(tmp_path / "subject-keys.sqlite")
    sealer = Sealer(PersonalData(AesGcmCipher(), keys))
    subject = new_id(SHARD)
    with pytest.raises(SubjectErased):
        sealer.key(subject)
    with pytest.raises(SubjectErased):
        sealer.key(subject)
    keys.close()


def test_an_erasure_whose_batch_is_not_saved_erases_nothing_and_is_dropped_at_start(
    shard: Shard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 2 (embedded): the key is deleted only after the batch that records
    ``Rider.Erased`` is saved; a batch that fails (a full disk) leaves the key, and the
    pending record is dropped at the next start since the log has no erasure."""
    app = shard.app()
    s = Scenario(app)
    rider_id = s.rider()

    def full_disk(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(app.events, "put", full_disk)
    with pytest.raises(OSError):
        s.given(c.EraseRider(rider_id=rider_id, by="self"))
    monkeypatch.undo()
    assert not shard.keys.erased(rider_id)  # never a deleted key without its event
    assert shard.keys.pending_erasures() == [rider_id]
    restarted = shard.app()
    assert restarted.finish_erasures() == 0
    assert shard.keys.pending_erasures() == [] and not shard.keys.erased(rider_id)
    assert restarted.repository.get(rider_id).name == "Ray"
    s.app = restarted
    s.given(c.EraseRider(rider_id=rider_id, by="self"))  # the retry erases
    assert shard.keys.erased(rider_id) and shard.keys.pending_erasures() == []


def test_a_kill_between_the_erasure_and_the_key_deletion_is_finished_at_start(
    shard: Shard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 2 (embedded): the batch with ``Rider.Erased`` is saved, then the
    process dies before the key is deleted (simulated: the deletion fails). The rider is
    refused at once (the log says erased), and the next start deletes the key."""
    app = shard.app()
    s = Scenario(app)
    rider_id = s.rider()

    def killed(_subject: UUID) -> bool:
        raise KeyboardInterrupt("killed") from None

    monkeypatch.setattr(shard.keys, "erase", killed)
    with pytest.raises(KeyboardInterrupt):
        s.given(c.EraseRider(rider_id=rider_id, by="self"))
    monkeypatch.undo()
    assert not shard.keys.erased(rider_id) and shard.keys.pending_erasures() == [rider_id]
    restarted = shard.app()
    refused = Scenario(restarted).when(request_ride(new_id(SHARD), rider_id))
    assert refused.outcome is not None and refused.outcome.code == "erased"
    assert restarted.finish_erasures() == 1
    assert shard.keys.erased(rider_id) and shard.keys.pending_erasures() == []
    assert shard.app().repository.get(rider_id).name == "erased"


def test_a_shared_rides_checkpoint_row_holds_its_drop_off_sealed_and_loads_it_back(
    shard: Shard,
) -> None:
    app = shard.app()
    s = Scenario(app)
    rider_id = s.rider()
    ride_id = new_id(SHARD)
    s.given(request_ride(ride_id, rider_id))
    terms = {"seats": 1, "max_wait_s": 300.0, "detour_factor": 1.5, "direct_s": 700.0}
    row = (str(ride_id), 37.62, -122.38, terms, None)
    sealed = app.seal_ride(row, "dropoff")
    assert is_sealed(sealed[1]) and 37.62 not in sealed and -122.38 not in sealed
    assert sealed[3] == terms
    matcher = _matcher()
    load(matcher, [], [], [], [], open=app.open_personal, sharing=[sealed])
    assert matcher.pool.terms[ride_id][1] == (37.62, -122.38)
    with pytest.raises(DamagedValue, match="does not authenticate"):  # not a pickup's token
        app.open_personal(sealed[1], "pickup")
    shard.keys.erase(rider_id)
    matcher = _matcher()
    load(matcher, [], [], [], [], open=shard.app().open_personal, sharing=[sealed])
    # erased: known as shared, its places not (its events after the checkpoint end it)
    assert matcher.pool.terms == {ride_id: (matcher.pool.terms[ride_id][0], None)}
    assert not matcher.pool.placed(ride_id)
