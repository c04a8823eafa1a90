"""Repositioning hints (``dispatch.matching.hints``): a cell where demand outruns supply
pulls up to its shortage of the nearest idle drivers within the drive time, each driver at
most once a rate-limit interval, none already in the cell or out of reach; and through a
real shard the hint is recorded as ``Driver.Hinted`` for an available driver only."""

from __future__ import annotations

import uuid
from pathlib import Path

import h3
from engine_commands import decide

from dispatch.bootstrap import build_embedded_engine
from dispatch.domain.ids import new_id
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.hints import HintConfig, Hints
from dispatch.matching.index import DriverIndex
from dispatch.matching.strategies import PendingRide
from dispatch.messages import Ping
from dispatch.settings import Settings
from schemas import commands as c
from schemas.common import LatLng

T0 = 1_767_600_000.0
CELL = h3.latlng_to_cell(37.80, -122.42, 8)
SHORT = h3.cell_to_latlng(CELL)  # where riders wait: a hint cell's centre


def ride(lat: float = SHORT[0], lng: float = SHORT[1]) -> PendingRide:
    return PendingRide(uuid.uuid4(), lat, lng, T0, T0 + 600)


def drivers_at(index: DriverIndex[uuid.UUID], *north_km: float) -> list[uuid.UUID]:
    out = []
    for km in north_km:
        d = uuid.uuid4()
        index.upsert(d, SHORT[0] - km / 111.32, SHORT[1], T0)
        out.append(d)
    return out


def test_a_short_cell_pulls_its_shortage_of_the_nearest_idle_drivers() -> None:
    index = DriverIndex[uuid.UUID](9, ttl_s=60)
    near, middle, far, too_far = drivers_at(index, 1.2, 2.0, 2.8, 3.6)  # 3.6 km: > 600 s
    hints = Hints(HintConfig(max_drive_s=600))
    out = hints.tick(T0, [ride(), ride()], index, lambda d: True, StraightLineEta())
    assert [h.driver_id for h in out] == [near, middle]  # a shortage of 2, nearest first
    assert {h.cell for h in out} == {CELL} and all(h.demand == 2 and h.supply == 0 for h in out)
    assert 0 < out[0].eta_s < out[1].eta_s <= 600
    # the rate limit: the same drivers are not hinted again within the interval
    again = hints.tick(T0 + 30, [ride(), ride()], index, lambda d: True, StraightLineEta())
    assert [h.driver_id for h in again] == [far]
    for d in (near, middle, far, too_far):  # pinged again: fresh positions
        lat, lng, _ = index.position(d)  # type: ignore[misc]
        index.upsert(d, lat, lng, T0 + 400)
    later = hints.tick(T0 + 400, [ride()], index, lambda d: True, StraightLineEta())
    assert [h.driver_id for h in later] == [near]
    assert too_far not in {h.driver_id for h in out + again + later}  # beyond the drive time


def test_supply_in_the_cell_covers_its_demand_and_is_not_pulled() -> None:
    index = DriverIndex[uuid.UUID](9, ttl_s=60)
    (inside,) = drivers_at(index, 0.0)
    outside = drivers_at(index, 1.8)
    hints = Hints(HintConfig())
    assert hints.tick(T0, [ride()], index, lambda d: True, StraightLineEta()) == []
    out = hints.tick(T0 + 60, [ride(), ride()], index, lambda d: True, StraightLineEta())
    assert [h.driver_id for h in out] == outside and inside not in {h.driver_id for h in out}


def test_drivers_not_eligible_are_passed_over() -> None:
    index = DriverIndex[uuid.UUID](9, ttl_s=60)
    queued, free = drivers_at(index, 1.2, 1.8)
    out = Hints(HintConfig()).tick(T0, [ride()], index, lambda d: d != queued, StraightLineEta())
    assert [h.driver_id for h in out] == [free]


def test_through_the_shard_an_idle_driver_is_hinted_and_the_hint_recorded(
    tmp_path: Path,
) -> None:
    now = [T0]
    settings = Settings(data_dir=tmp_path, shards=1, hint_every_s=30, hint_min_interval_s=300,
                        max_wait_s=900, search_radius_m=1_000, ping_ttl_s=600)  # fmt: skip
    engine = build_embedded_engine(settings, lambda: now[0])
    idle, busy = new_id(0), new_id(0)
    for d in (idle, busy):
        assert decide(engine, now[0], c.RegisterDriver(driver_id=d, name="d")).accepted
        assert decide(engine, now[0], c.GoOnline(driver_id=d)).accepted
    assert decide(engine, now[0], c.GoOffline(driver_id=busy)).accepted
    pings = [Ping(d, SHORT[0] - 0.02, SHORT[1], now[0]) for d in (idle, busy)]  # 2.2 km south
    engine.transport.send_pings(pings)
    rider, wanted = new_id(0), new_id(0)
    assert decide(engine, now[0], c.RegisterRider(rider_id=rider, name="r")).accepted
    here = LatLng(lat=SHORT[0], lng=SHORT[1])
    request = c.RequestRide(ride_id=wanted, rider_id=rider, pickup=here, dropoff=here)
    assert decide(engine, now[0], request).accepted
    for _ in range(3):  # beyond the ride's search radius: it waits; the hint cadence runs
        now[0] += 31
        engine.run_once()
    recorder = engine.workers[0].app.recorder
    hinted = [e for e in recorder.select_events(idle) if e.topic == "dispatch.Driver.Hinted"]
    assert len(hinted) == 1, "one hint: the rate limit holds the next cadences"
    assert not [e for e in recorder.select_events(busy) if e.topic.endswith("Hinted")]
    assert engine.workers[0].matcher.stats.hints == 1
    engine.stop()


def test_recent_requests_count_as_demand_where_no_ride_waits_now() -> None:
    """A cell's demand is the larger of its waiting rides and its requests of the surge
    window: a hot spot whose rides were all served still pulls idle drivers."""
    index = DriverIndex[uuid.UUID](9, ttl_s=60)
    first, second, third = drivers_at(index, 1.2, 2.0, 2.8)
    hints = Hints(HintConfig())
    assert hints.tick(T0, [], index, lambda d: True, StraightLineEta()) == []
    out = hints.tick(T0, [ride()], index, lambda d: True, StraightLineEta(), [CELL] * 3)
    assert [h.driver_id for h in out] == [first, second, third]
    assert all(h.demand == 3 for h in out)


def test_a_hint_is_kept_sealed_under_the_drivers_key_and_reads_as_none_once_erased(
    tmp_path: Path,
) -> None:
    """A hint names a cell near its driver (docs/PRIVACY.md, "Place crossings and hints"):
    the stored event holds neither the cell nor its centre; the shard reads them opened;
    once the driver is erased they read as none."""
    now = [T0]
    settings = Settings(data_dir=tmp_path, shards=1, hint_every_s=30, hint_min_interval_s=300,
                        max_wait_s=900, search_radius_m=1_000, ping_ttl_s=600)  # fmt: skip
    engine = build_embedded_engine(settings, lambda: now[0])
    driver, rider, wanted = new_id(0), new_id(0), new_id(0)
    assert decide(engine, now[0], c.RegisterDriver(driver_id=driver, name="d")).accepted
    assert decide(engine, now[0], c.GoOnline(driver_id=driver)).accepted
    engine.transport.send_pings([Ping(driver, SHORT[0] - 0.02, SHORT[1], now[0])])
    assert decide(engine, now[0], c.RegisterRider(rider_id=rider, name="r")).accepted
    here = LatLng(lat=SHORT[0], lng=SHORT[1])
    request = c.RequestRide(ride_id=wanted, rider_id=rider, pickup=here, dropoff=here)
    assert decide(engine, now[0], request).accepted
    for _ in range(2):
        now[0] += 31
        engine.run_once()
    app = engine.workers[0].app
    (stored,) = [e for e in app.recorder.select_events(driver) if e.topic.endswith("Hinted")]
    assert CELL.encode() not in stored.state and f"{SHORT[0]:.4f}".encode() not in stored.state
    (hint,) = [e for e in app.repository.event_store.get(driver) if type(e).__name__ == "Hinted"]
    assert hint.cell == CELL and abs(hint.lat - SHORT[0]) < 1e-5
    assert decide(engine, now[0], c.GoOffline(driver_id=driver)).accepted
    assert decide(engine, now[0], c.EraseDriver(driver_id=driver, by="self")).accepted
    (gone,) = [e for e in app.repository.event_store.get(driver) if type(e).__name__ == "Hinted"]
    assert (gone.cell, gone.lat, gone.lng) == (None, None, None)
    engine.stop()
