"""The DISPATCH_POOL_* settings reach the matchers' pooling (``build_pool_matching``), and a
meaningless value is refused naming the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispatch.bootstrap import build_pool_matching
from dispatch.domain.geo import straight_line_pace
from dispatch.matching.pooling.batch import PoolLimits
from dispatch.settings import Settings


def test_the_pool_settings_become_the_windows_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("CANDIDATES", "5"), ("MAX_TRIP", "2"), ("BUDGET_MS", "80"),
                        ("DRIVE_WEIGHT", "1.5")):  # fmt: skip
        monkeypatch.setenv(f"DISPATCH_POOL_{name}", value)
    settings = Settings()
    matching = build_pool_matching(settings)
    assert matching.limits == PoolLimits(candidates=5, max_trip=2, budget_s=0.08,
                                         drive_weight=1.5)  # fmt: skip
    assert matching.seconds_per_m == straight_line_pace(settings.road_factor, settings.speed_kmh)


def test_a_second_driven_weighs_as_much_as_a_second_of_delay_by_default() -> None:
    assert build_pool_matching(Settings()).limits.drive_weight == 1.0


@pytest.mark.parametrize("value", ["-0.5", "101", "nan", "heavy"])
def test_a_meaningless_drive_weight_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DISPATCH_POOL_DRIVE_WEIGHT", value)
    with pytest.raises(ValidationError, match="pool_drive_weight"):
        Settings()
