"""Repositioning hints in the simulator: with ``hints="follow"`` idle drivers head for the
hinted cells, with ``"ignore"`` the same hints are sent and nobody moves for them, with
``"off"`` none are sent; ``dispatch experiment --hints`` pairs the runs, and a bad choice
is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from dispatch.cli.experiment import parse_hints, variants_of
from dispatch.settings import Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.experiment import with_hints
from dispatch.simulator.runner import SimConfig


def run(tmp_path: Path, hints: str):  # type: ignore[no-untyped-def]
    # few drivers for the demand: riders wait, hints have somewhere to send drivers
    config = SimConfig(drivers=40, minutes=10, seed=5, demand_per_min=8, warmup_minutes=0,
                       hints=hints)  # fmt: skip
    settings, _ = with_hints(Settings(data_dir=tmp_path, search_radius_m=1_500), hints)
    return simulate_embedded(config, settings).finished


def test_followed_hints_move_drivers_ignored_ones_do_not_and_off_sends_none(
    tmp_path: Path,
) -> None:
    follow, ignore, off = (run(tmp_path / h, h) for h in ("follow", "ignore", "off"))
    assert follow.hints_received > 0 and follow.hints_followed > 0
    assert follow.hints_followed <= follow.hints_received
    assert ignore.hints_received > 0 and ignore.hints_followed == 0
    assert off.hints_received == 0
    assert follow.violations == ignore.violations == off.violations == []
    assert follow.demand_hash == ignore.demand_hash == off.demand_hash  # paired


def test_the_experiment_pairs_hint_choices_and_refuses_a_bad_one() -> None:
    variants = variants_of("greedy", None, (None,), "ignore,follow")
    assert [v.label for v in variants] == ["greedy/hints ignore", "greedy/hints follow"]
    for bad in ("sometimes", "follow,follow", ","):
        with pytest.raises(typer.BadParameter):
            parse_hints(bad)
