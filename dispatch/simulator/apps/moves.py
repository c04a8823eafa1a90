"""Where a simulated vehicle is: straight legs at a pace, remembered for a little while so
a batch of fixes can say where it was each second since the last batch."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from dispatch.simulator.city import City

HISTORY = 8  # legs remembered (a batch covers a few seconds: a few legs at most)


@dataclass(frozen=True, slots=True)
class Leg:
    start: tuple[float, float]
    end: tuple[float, float]
    t0: float
    t1: float

    def at(self, t: float) -> tuple[float, float]:
        if t >= self.t1 or self.t1 <= self.t0:
            return self.end
        f = max(0.0, (t - self.t0) / (self.t1 - self.t0))
        return (
            self.start[0] + (self.end[0] - self.start[0]) * f,
            self.start[1] + (self.end[1] - self.start[1]) * f,
        )


class Moves:
    """A vehicle's legs; ``go`` starts a new one from wherever it is."""

    def __init__(self, city: City, home: tuple[float, float], now: float) -> None:
        self.city = city
        self.legs: deque[Leg] = deque([Leg(home, home, now, now)], maxlen=HISTORY)

    def at(self, t: float) -> tuple[float, float]:
        for leg in reversed(self.legs):
            if leg.t0 <= t:
                return leg.at(t)
        return self.legs[0].start

    def go(self, to: tuple[float, float], now: float, metres_s: float) -> float:
        """Head for ``to`` from the position at ``now``; returns the arrival time."""
        here = self.at(now)
        arrive = now + self.city.distance_m(here, to) / max(0.1, metres_s)
        self.legs.append(Leg(here, to, now, arrive))
        return arrive

    def stop(self, now: float) -> None:
        here = self.at(now)
        self.legs.append(Leg(here, here, now, now))

    @property
    def arrives(self) -> float:
        return self.legs[-1].t1
