"""Surge: the multiplier of one H3 cell, from its demand and supply (docs/MARKETPLACE.md,
"Surge"). Pure and vectorised: one call prices every active cell of a shard at once.

Multipliers are whole hundredths (``100`` is 1.00), so a level is exact and its text is
the decimal a price takes. Each cadence, per cell:

    pressure = demand / (supply + 1)
    target   = clamp(1 + gain * (pressure - 1), 1, cap)

where demand is the ride requests of the window and supply the available drivers now (the
``+ 1``: one request and no driver is not an infinite pressure). The level then moves
toward the target, recorded only when the window's demand is beyond the noise band of the
demand the level implies (``SurgeCurve.noise``: a Poisson count's chance wander is not a
change) and the target is more than ``band`` away (hysteresis), or is 1.00 (no pressure
left: back to 1.00, not to within the band of it):
the gap left after the move is ``(1 - smoothing)`` of the gap before, less ``band``
(never below 0), so a constant target is reached in a few cadences and then held (no
flapping *under constant input*: a noisy demand count moves the target, and the level with
it, see docs/MARKETPLACE.md), and the next level never falls when demand rises (monotone).
A level is never above the cap, even one set under a higher cap. The level is the only
state the curve keeps: it is what the events record, with the curve's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from dispatch.domain.fares import MAX_SURGE

ONE = 100  # 1.00, in hundredths
Levels = npt.NDArray[np.int64]
Counts = npt.NDArray[np.float64] | npt.NDArray[np.int64]


def hundredths(value: Decimal) -> int:
    """A multiplier of at most 2 decimals as whole hundredths (``Decimal("1.35")``: 135)."""
    scaled = value * 100
    if scaled != scaled.to_integral_value():
        raise ValueError(f"a multiplier has at most 2 decimals, got {value}")
    return int(scaled)


def multiplier_text(level: int) -> str:
    """A level in hundredths as the decimal text events and answers carry (``"1.35"``)."""
    return f"{level // 100}.{level % 100:02d}"


@dataclass(frozen=True, slots=True)
class SurgeCurve:
    """How demand and supply become a multiplier: ``cap`` (at most ``MAX_SURGE``), the
    ``gain`` of the pressure above 1, the share of the gap a cadence closes
    (``smoothing``), the hysteresis ``band`` and the ``noise`` band: a level moves only when
    the window's demand is more than ``noise`` standard deviations from the demand its level
    implies at this supply: with ``p = 1 + (level - 1) / gain`` and ``implied = p * (supply
    + 1)``, beyond ``noise * sqrt(max(implied + p * p * supply, 1))`` (demand and supply
    both Poisson counts), so counts that wander by chance around steady means do not move it
    (0: off, the curve before)."""

    cap: Decimal = Decimal("3.00")
    gain: float = 0.5
    smoothing: float = 0.5
    band: Decimal = Decimal("0.10")
    noise: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.cap <= MAX_SURGE:
            raise ValueError(f"the surge cap must be from 1 to {MAX_SURGE}, got {self.cap}")
        if not Decimal("0.01") <= self.band <= 1:
            raise ValueError(f"the surge band must be from 0.01 to 1, got {self.band}")
        if not 0 < self.gain <= 100:
            raise ValueError(f"the surge gain must be above 0 (at most 100), got {self.gain}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"the surge smoothing must be in (0, 1], got {self.smoothing}")
        if not 0 <= self.noise <= 10:
            raise ValueError(f"the surge noise band must be from 0 to 10, got {self.noise}")
        for value in (self.cap, self.band):  # at most 2 decimals each
            hundredths(value)

    @property
    def cap_level(self) -> int:
        return hundredths(self.cap)

    @property
    def band_level(self) -> int:
        return hundredths(self.band)

    def targets(self, demand: Counts, supply: Counts) -> npt.NDArray[np.float64]:
        """Each cell's target, in hundredths (not rounded)."""
        pressure = np.asarray(demand, np.float64) / (np.asarray(supply, np.float64) + 1.0)
        raw = ONE + (self.gain * ONE) * (pressure - 1.0)
        return np.clip(raw, ONE, self.cap_level)

    def record(self) -> dict[str, str | float]:
        """The curve's settings as each ``Surge.Changed`` records them (``from_record``)."""
        return {"cap": str(self.cap), "gain": self.gain, "smoothing": self.smoothing,
                "band": str(self.band), "noise": self.noise}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, str | float]) -> SurgeCurve:
        # a change recorded before the noise band had none (0)
        return cls(Decimal(str(record["cap"])), float(record["gain"]),
                   float(record["smoothing"]), Decimal(str(record["band"])),
                   float(record.get("noise", 0.0)))  # fmt: skip

    def step(self, levels: Levels, demand: Counts, supply: Counts) -> tuple[Levels, Levels]:
        """The next level of each cell (``levels``: the current ones) and its target, both
        in whole hundredths; a cell whose target is within the band keeps its level, but
        never above the cap (a level above a lowered cap comes down to it). The target is
        rounded (half up, to a hundredth) before the step, so a recorded change re-derives
        from its recorded previous level and target (``rederive``)."""
        target = np.floor(self.targets(demand, supply) + 0.5)
        after = self.step_to(levels, target)
        if self.noise > 0:
            demand_f = np.asarray(demand, np.float64)
            supply_f = np.asarray(supply, np.float64)
            pressure = 1.0 + (levels - ONE) / (self.gain * ONE)  # what the level implies
            implied = pressure * (supply_f + 1.0)
            # both counts Poisson: the demand's variance and the supply's, in demand units
            spread = np.sqrt(np.maximum(implied + pressure * pressure * supply_f, 1.0))
            beyond = np.abs(demand_f - implied) > self.noise * spread
            # within the noise of its level's demand it holds (under the cap), but with no
            # demand at all it goes on back to 1.00
            held = np.minimum(levels, self.cap_level)
            after = np.where(beyond | (demand_f <= 0), after, held).astype(np.int64)
        return after, target.astype(np.int64)

    def step_to(self, levels: Levels, target: npt.NDArray[np.float64]) -> Levels:
        """The next level of each cell toward its (rounded) target (the noise band aside)."""
        gap = target - levels
        left = np.maximum((1.0 - self.smoothing) * np.abs(gap) - self.band_level, 0.0)
        moved = np.floor(target - np.sign(gap) * left + 0.5)  # half up, to a hundredth
        moved = np.clip(moved, ONE, self.cap_level)
        # Beyond the band it moves; and a cell with no pressure left goes back to 1.00, not
        # to within the band of it.
        move = (np.abs(gap) > self.band_level) | (target <= ONE)
        out = np.where(move, moved, levels)
        return np.minimum(out, self.cap_level).astype(np.int64)


def rederive(
    previous: str, demand: int, supply: int, curve: dict[str, str | float]
) -> tuple[str, str]:
    """The multiplier and target a ``Surge.Changed`` should record, from what it records
    (its previous multiplier, demand, supply and curve): the check that a recorded change is
    explained by its inputs (tests; ``replay verify``)."""
    model = SurgeCurve.from_record(curve)
    level = np.array([hundredths(Decimal(previous))], dtype=np.int64)
    after, target = model.step(level, np.array([demand]), np.array([supply]))
    return multiplier_text(int(after[0])), multiplier_text(int(target[0]))
