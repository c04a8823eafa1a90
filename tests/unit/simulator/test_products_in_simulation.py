"""The simulator registers vehicles and asks for products by mixes, and its report gives
served % and waits per product and the revenue of the completed rides."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dispatch.settings import ProductConfig, Settings
from dispatch.simulator.embedded import simulate_embedded
from dispatch.simulator.products import parse_mix
from dispatch.simulator.runner import SimConfig


def test_the_report_gives_each_product_and_the_revenue(tmp_path: Path) -> None:
    config = SimConfig(
        drivers=30,
        minutes=8,
        seed=5,
        demand_per_min=4,
        warmup_minutes=1,
        vehicle_mix=(("standard", 0.5), ("xl", 0.5)),
        product_mix=(("standard", 0.5), ("xl", 0.3), ("accessible", 0.2)),
    )
    sim = simulate_embedded(config, Settings(data_dir=tmp_path))
    report, records = sim.finished, sim.records()

    assert set(report.products) == {"standard", "xl", "accessible"}
    assert sum(p["requests"] for p in report.products.values()) == report.requests
    # no accessible vehicle in the fleet: an accessible ride is never served
    assert report.products["accessible"]["served"] == 0
    assert report.products["xl"]["served"] > 0
    assert not report.violations
    completed = [r for r in records if r.requested_s >= sim.cfg.warmup_s and r.fare_total]
    assert report.priced_rides == len(completed) > 0
    assert report.revenue == {"USD": str(sum(Decimal(r.fare_total or 0) for r in completed))}
    rows = dict(report.rows())
    assert rows["revenue (final fares)"] == f"{report.revenue['USD']} USD ({len(completed)} rides)"
    assert rows["  accessible: served, wait mean / p95"].startswith("0 of ")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("standard=0.8,limo=0.2", "unknown product 'limo'"),
        ("standard", "'standard' is not product=share"),
        ("standard=lots", "the share of standard is not a number"),
        ("standard=-1", "must be a finite number >= 0"),
        ("standard=0,xl=0", "no product has a share above 0"),
    ],
)
def test_a_bad_mix_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_mix(text, "--product-mix")


def test_unpriced_rides_are_served_only_by_vehicles_of_their_product(tmp_path: Path) -> None:
    """With no fare rules at all no ride is priced; each still carries its product, so an
    accessible ride is never served by the fleet's standard cars (and the report's
    per-product figures count only the rides its vehicles served)."""
    config = SimConfig(
        drivers=30,
        minutes=8,
        seed=5,
        demand_per_min=4,
        warmup_minutes=1,
        vehicle_mix=(("standard", 1.0),),
        product_mix=(("standard", 0.5), ("accessible", 0.5)),
    )
    sim = simulate_embedded(config, Settings(data_dir=tmp_path, markets=[]))
    report = sim.finished

    assert report.priced_rides == 0
    assert report.products["accessible"]["requests"] > 0
    assert report.products["accessible"]["served"] == 0
    assert report.products["standard"]["served"] > 0
    assert not report.violations


OWN = {"standard": ProductConfig(), "van": ProductConfig(min_seats=7)}  # no xl, no accessible


def test_a_catalog_of_ones_own_is_simulated_with_its_products(tmp_path: Path) -> None:
    both = (("standard", 0.5), ("van", 0.5))
    config = SimConfig(drivers=20, minutes=6, seed=5, demand_per_min=6, warmup_minutes=1,
                       vehicle_mix=both, product_mix=both)  # fmt: skip
    sim = simulate_embedded(config, Settings(data_dir=tmp_path, products=OWN))
    assert sim.outcomes["invalid_command"] == 0  # every van registered (7 seats)
    assert set(sim.finished.products) == {"standard", "van"}
    assert sim.finished.products["van"]["served"] > 0


def test_the_default_mixes_keep_only_the_products_the_catalog_lists(tmp_path: Path) -> None:
    config = SimConfig(drivers=10, minutes=4, seed=5, demand_per_min=5, warmup_minutes=1)
    sim = simulate_embedded(config, Settings(data_dir=tmp_path, products=OWN))
    assert sim.outcomes["invalid_command"] == 0  # no xl or accessible vehicle, no such ride
    assert set(sim.finished.products) == {"standard"}


def test_a_mix_names_the_products_of_the_catalog_in_force() -> None:
    catalog = Settings(products=OWN).catalog
    assert parse_mix("standard=0.5,van=0.5", "--vehicle-mix", catalog) == (
        ("standard", 0.5), ("van", 0.5))  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown product 'xl' \(known: standard, van\)"):
        parse_mix("xl=1", "--product-mix", catalog)
    with pytest.raises(ValueError, match="unknown product 'van'"):
        parse_mix("van=1", "--product-mix")  # the default catalog
