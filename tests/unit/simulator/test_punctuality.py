"""The scheduled rides' punctuality figures, on hand-made rides whose answers are known."""

from __future__ import annotations

import pytest

from dispatch.simulator.punctuality import punctuality
from dispatch.simulator.results import RideRecord


def ride(i: int, outcome: str | None, arrived: float | None, **extra: object) -> RideRecord:
    return RideRecord(i, f"r{i}", 0.0, 37.77, -122.42, 37.78, -122.41, outcome=outcome,
                      arrived_s=arrived, **extra)  # type: ignore[arg-type]  # fmt: skip


def booked(i: int, outcome: str | None, arrived: float | None, **extra: object) -> RideRecord:
    base = {"scheduled_s": 1_000.0, "dispatched_s": 400.0, "accepted_s": 500.0}
    return ride(i, outcome, arrived, **(base | extra))


RIDES = [
    booked(0, "completed", 900.0),  # 100 s early
    booked(1, "completed", 1_100.0),  # 100 s late: within the 2 minutes, on time
    booked(2, "completed", 1_300.0, overdue=False),  # 300 s late
    booked(3, "completed", 1_120.0),  # exactly 120 s late: on time
    booked(4, "expired", None, accepted_s=None, overdue=True),  # never found: late
    booked(5, "cancelled", None, accepted_s=None),  # the rider cancelled first: left out
    booked(6, None, None, accepted_s=None, dispatched_s=None),  # still booked: left out
    ride(7, "completed", 5_000.0, accepted_s=10.0),  # an immediate ride: ignored
]


def test_on_time_share_lateness_and_early_arrivals_of_hand_made_rides() -> None:
    p = punctuality(RIDES)
    assert (p.booked, p.dispatched, p.served) == (7, 6, 4)
    assert (p.completed, p.cancelled, p.expired, p.overdue) == (4, 1, 1, 1)
    # due: four arrived and one expired; on time: 0, 1 and 3
    assert (p.due, p.on_time) == (5, 3)
    assert p.on_time_pct == pytest.approx(60.0)
    # lateness, 0 when early: [0, 100, 120, 300]; nearest rank: p50 -> rank 2, p95 -> rank 3
    assert p.late_s_p50 == 120.0 and p.late_s_p95 == 300.0
    assert p.early_s_mean == pytest.approx(25.0)  # (100 + 0 + 0 + 0) / 4
    assert p.dispatch_ahead_s_mean == pytest.approx(600.0)


def test_a_tighter_tolerance_counts_fewer_on_time() -> None:
    assert punctuality(RIDES, tolerance_s=0.0).on_time == 1


def test_no_scheduled_ride_gives_no_figure_rather_than_zero() -> None:
    p = punctuality([ride(0, "completed", 50.0)])
    assert p.booked == p.due == 0
    assert p.on_time_pct is None and p.late_s_p50 is None and p.early_s_mean is None


def test_a_scheduled_rides_wait_runs_from_its_time_not_from_its_booking() -> None:
    assert booked(0, "completed", 900.0).wait_s == 0.0
    assert booked(1, "completed", 1_300.0).wait_s == 300.0
    assert ride(2, "completed", 60.0).wait_s == 60.0  # immediate: from the request


def test_the_html_report_has_a_scheduled_table_only_for_runs_that_booked_and_plots_none() -> None:
    from dispatch.simulator.html_report import RunData, _after_warmup, render_html

    summary = {"bookings_total": 7, "scheduled_on_time_pct": 60.0, "scheduled_late_s_p95": 300.0}
    with_bookings = RunData("greedy", 1, summary, RIDES, [])
    html = render_html([with_bookings], "t", warmup_s=0.0)
    assert "<h2>Scheduled rides</h2>" in html and "60.0" in html
    assert [r.index for r in _after_warmup([with_bookings], "greedy", 0.0)] == [7]
    plain = render_html([RunData("greedy", 1, {"bookings_total": 0}, RIDES[7:], [])], "t", 0.0)
    assert "Scheduled rides" not in plain
