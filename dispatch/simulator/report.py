"""The simulator's end-of-run report."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dispatch.domain.ride import RideStatus

if TYPE_CHECKING:
    from dispatch.simulator.runner import Simulation


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank), None when there is no value at all."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def seconds(*values: float | None) -> str:
    """``12 / 30 / 41 s``; a figure with no sample behind it shows as ``-``."""
    return " / ".join("-" if v is None else f"{v:.0f}" for v in values) + " s"


@dataclass(frozen=True)
class SimReport:
    """The run's figures. A figure with no sample behind it (say, time to offer in a run
    without requests) is None, which JSON shows as null."""

    strategy: str
    seed: int
    drivers: int
    simulated_minutes: float
    requests: int
    served: int
    served_pct: float
    completed: int
    cancelled: int
    expired: int
    in_flight: int
    offer_s_p50: float | None
    offer_s_p95: float | None
    offer_s_p99: float | None
    accept_s_p50: float | None
    accept_s_p95: float | None
    accept_s_p99: float | None
    pickup_eta_s_mean: float | None
    pickup_eta_s_p95: float | None
    utilisation_pct: float
    events: int
    outcomes: dict[str, int]
    violations: list[str]
    wall_s: float
    events_per_s: float

    @classmethod
    def build(cls, sim: Simulation, wall_s: float, strategy: str = "") -> SimReport:
        rides = list(sim.rides.values())
        served = [r for r in rides if r.accepted_at is not None]
        unserved = [r for r in rides if r.accepted_at is None and r.outcome is not None]
        decided = len(served) + len(unserved)
        offer = [r.first_offer_at - r.requested_at for r in rides if r.first_offer_at is not None]
        accept = [r.accepted_at - r.requested_at for r in served if r.accepted_at is not None]
        etas = [r.pickup_eta_s for r in served if r.pickup_eta_s is not None]
        busy = sim._busy_samples
        events = sim._events
        return cls(
            strategy=strategy,
            seed=sim.cfg.seed,
            drivers=sim.cfg.drivers,
            simulated_minutes=sim.cfg.minutes,
            requests=len(rides),
            served=len(served),
            served_pct=100.0 * len(served) / decided if decided else 0.0,
            completed=sum(r.outcome == RideStatus.COMPLETED for r in rides),
            cancelled=sum(r.outcome == RideStatus.CANCELLED for r in rides),
            expired=sum(r.outcome == RideStatus.EXPIRED for r in rides),
            in_flight=len(rides) - decided,
            offer_s_p50=percentile(offer, 50),
            offer_s_p95=percentile(offer, 95),
            offer_s_p99=percentile(offer, 99),
            accept_s_p50=percentile(accept, 50),
            accept_s_p95=percentile(accept, 95),
            accept_s_p99=percentile(accept, 99),
            pickup_eta_s_mean=statistics.fmean(etas) if etas else None,
            pickup_eta_s_p95=percentile(etas, 95),
            utilisation_pct=100.0 * statistics.fmean(busy) if busy else 0.0,
            events=events,
            outcomes=dict(sim.outcomes),
            violations=[str(v) for v in sim.checker.violations],
            wall_s=wall_s,
            events_per_s=events / wall_s if wall_s else 0.0,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("strategy / seed", f"{self.strategy} / {self.seed}"),
            ("drivers, simulated time", f"{self.drivers}, {self.simulated_minutes:g} min"),
            ("requests", f"{self.requests}"),
            (
                "served (driver assigned)",
                f"{self.served} ({self.served_pct:.1f}% of "
                f"{self.requests - self.in_flight} decided)",
            ),
            (
                "completed / cancelled / expired",
                f"{self.completed} / {self.cancelled} / {self.expired}",
            ),
            ("still in flight at the end", f"{self.in_flight}"),
            (
                "time to offer p50/p95/p99",
                seconds(self.offer_s_p50, self.offer_s_p95, self.offer_s_p99),
            ),
            (
                "time to accept p50/p95/p99",
                seconds(self.accept_s_p50, self.accept_s_p95, self.accept_s_p99),
            ),
            ("pickup ETA mean / p95", seconds(self.pickup_eta_s_mean, self.pickup_eta_s_p95)),
            ("driver utilisation", f"{self.utilisation_pct:.1f}%"),
            ("command outcomes", ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))),
            ("events written", f"{self.events}"),
            ("invariant violations", f"{len(self.violations)}"),
            ("wall time", f"{self.wall_s:.1f} s"),
            ("events/s", f"{self.events_per_s:,.0f}"),
        ]
