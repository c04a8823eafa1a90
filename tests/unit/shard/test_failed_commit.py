"""A batch whose commit fails leaves no trace: not in the log, not in memory."""

from __future__ import annotations

import pytest

from dispatch.domain.driver import DriverStatus
from dispatch.domain.ride import RideStatus
from schemas import commands as c


def test_failed_commit_forgets_the_whole_batch_and_the_commands_can_be_sent_again(s, monkeypatch):
    rider_id, driver_id = s.rider(), s.driver()
    ride_id = s.offered(rider_id, driver_id)
    before = {i: s.state_of(s.get(i)) for i in (rider_id, driver_id, ride_id)}
    position = s.position()
    accept = s.envelope(c.AcceptOffer(ride_id=ride_id, driver_id=driver_id))
    new_rider = s.new_id()
    register = s.envelope(c.RegisterRider(rider_id=new_rider, name="Ray"))
    assert s.app.handle(accept, s.now)
    assert s.app.handle(register, s.now)

    def broken_put(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(s.app.events, "put", broken_put)
    with pytest.raises(OSError):
        s.app.commit()
    monkeypatch.undo()

    assert s.position() == position
    assert {i: s.state_of(s.get(i)) for i in before} == before
    assert s.working(new_rider) is None
    # no command record was kept either: the same command ids are applied afresh
    assert s.app.handle(accept, s.now)
    assert s.app.handle(register, s.now)
    outcomes, _ = s.app.commit()
    assert [(o.accepted, o.duplicate) for o in outcomes] == [(True, False), (True, False)]
    assert s.get(ride_id).status == RideStatus.ACCEPTED
    assert s.get(driver_id).status == DriverStatus.EN_ROUTE
    assert s.get(new_rider).name == "Ray"
