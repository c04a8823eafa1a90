"""How long simulated drivers really take: the estimate, varied per driver, per trip and by
time of day.

The matcher estimates a pickup from straight-line distance x road factor at a set speed.
Drivers who took exactly that time would make every ETA exact, and a policy that ranks by a
biased ETA would look perfect. Here a leg takes the estimate x a driver's own pace (some
drive faster: log-normal around 1) x the leg's luck (lights, parking: log-normal around 1)
x congestion at that time of day (a morning and an evening peak). Every factor is drawn
from a keyed stream, so a leg takes the same time under any strategy that drives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dispatch.simulator.streams import Streams

M_PER_S_PER_KMH = 1 / 3.6


@dataclass(frozen=True, slots=True)
class TravelConfig:
    speed_kmh: float = 25.0
    road_factor: float = 1.35
    driver_pace_sd: float = 0.10  # log-normal sigma of a driver's pace
    leg_sd: float = 0.15  # log-normal sigma of one leg's time
    congestion_peak: float = 0.25  # +25 % at the height of a rush hour
    start_hour: float = 8.0  # time of day the simulation starts

    @property
    def exact(self) -> bool:
        return self.driver_pace_sd == 0 and self.leg_sd == 0 and self.congestion_peak == 0


def congestion(hour: float, peak: float) -> float:
    """1 off-peak, 1 + ``peak`` at 08:00 and 17:30 (Gaussian bumps an hour or so wide)."""
    hour %= 24.0
    morning = math.exp(-(((hour - 8.0) / 1.2) ** 2))
    evening = math.exp(-(((hour - 17.5) / 1.5) ** 2))
    return 1.0 + peak * max(morning, evening)


class TravelModel:
    def __init__(self, config: TravelConfig, streams: Streams) -> None:
        self.cfg, self.streams = config, streams
        self.s_per_m = config.road_factor / (config.speed_kmh * M_PER_S_PER_KMH)
        self._pace: dict[int, float] = {}

    def estimate_s(self, metres: float) -> float:
        """The matcher's kind of estimate: straight line x road factor at the set speed."""
        return metres * self.s_per_m

    def pace(self, driver: int) -> float:
        pace = self._pace.get(driver)
        if pace is None:
            sd = self.cfg.driver_pace_sd
            pace = self.streams.rng("pace", driver).lognormvariate(0.0, sd) if sd else 1.0
            self._pace[driver] = pace
        return pace

    def realised_s(self, metres: float, driver: int, elapsed_s: float, *leg: object) -> float:
        """The time ``driver`` takes for this leg (``leg`` keys its luck) starting
        ``elapsed_s`` after the simulation's start."""
        return self.realised_from_s(self.estimate_s(metres), driver, elapsed_s, *leg)

    def realised_from_s(
        self, free_flow_s: float, driver: int, elapsed_s: float, *leg: object
    ) -> float:
        """The same for a leg whose free-flow time is known (a route over the roads): that
        time x the driver's pace x the leg's luck x congestion, from the same streams."""
        luck = self.streams.rng("leg", *leg).lognormvariate(0.0, self.cfg.leg_sd)
        hour = self.cfg.start_hour + elapsed_s / 3600.0
        return (
            free_flow_s
            * self.pace(driver)
            * (luck if self.cfg.leg_sd else 1.0)
            * congestion(hour, self.cfg.congestion_peak)
        )
