"""Long-lived aggregates get a snapshot every 50 events; a cold read starts from it."""

from __future__ import annotations

from schemas import commands as c


def test_a_driver_gets_a_snapshot_every_fifty_events_and_a_cold_read_uses_it(s) -> None:
    driver_id = s.driver(online=False)
    # 1 + 120 events: online, offline, online, offline..., each command noted on the driver
    for _ in range(30):
        s.given(c.GoOnline(driver_id=driver_id))
        s.given(c.GoOffline(driver_id=driver_id))
    snapshots = s.app.snapshots
    assert snapshots is not None
    (latest,) = list(snapshots.get(driver_id, desc=True, limit=1))
    assert latest.originator_version == 100

    s.app.discard()  # forget every cached aggregate: the next read is cold
    events_read: list[int] = []
    original = s.app.events.get

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = list(original(*args, **kwargs))
        events_read.append(len(found))
        return iter(found)

    s.app.events.get = counting  # type: ignore[method-assign]
    driver = s.app.repository.get(driver_id)
    assert driver.version == 121 and str(driver.status) == "offline"
    assert sum(events_read) == 21  # only the events after the snapshot


def test_rides_and_command_records_are_not_snapshotted(s) -> None:
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.completed(rider_id, driver_id)
    snapshots = s.app.snapshots
    assert snapshots is not None
    assert list(snapshots.get(ride_id)) == []
