"""The simulator's HTML report as a real browser shows it: Debian's Chromium, headless,
takes a screenshot of the local file, and the picture must not be blank and must show the
strategies' plot colours and the map's.

Chromium comes from the Debian package (``scripts/ci-browser.sh`` installs it). Without it
the test is skipped, except when ``CI`` is set: then it fails, so CI cannot go green by not
rendering the report. The browser gets a fresh profile, no extensions, and a proxy that
answers nothing, so it cannot reach the network even if the page asked (it does not).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image
from tools import run_chromium

from dispatch.simulator.html_report import Comparison, RunData, write_report
from dispatch.simulator.results import RideRecord, Sample

STRATEGY_COLOURS = {"greedy": (0x1F, 0x77, 0xB4), "batch": (0xFF, 0x7F, 0x0E)}
VIRIDIS_MID = (0x21, 0x91, 0x8C)  # the map's colour scale, around its middle


def synthetic_run(strategy: str, seed: int, requests: int = 400) -> RunData:
    rng = random.Random(f"{strategy}-{seed}")
    rides = []
    for i in range(requests):
        t = rng.uniform(0, 3_600)
        lat, lng = 37.77 + rng.gauss(0, 0.015), -122.42 + rng.gauss(0, 0.02)
        ride = RideRecord(i, f"r{i}", t, lat, lng, lat, lng)
        if rng.random() < 0.1:
            ride.outcome = "expired"
        else:
            eta = rng.uniform(60, 420)
            ride.first_offer_s, ride.accepted_s = t + 5, t + 10
            ride.eta_estimated_s, ride.eta_realised_s = eta, eta * rng.uniform(0.8, 1.5)
            ride.arrived_s = t + 10 + ride.eta_realised_s
            ride.started_s, ride.ended_s = ride.arrived_s + 30, ride.arrived_s + 900
            ride.outcome = "completed"
        rides.append(ride)
    samples = [
        Sample(t, int(t / 9), rng.randint(0, 20), 40 - k % 20, 2, 58 + k % 20, int(t / 10),
               int(t / 12), int(t / 300), int(t / 200))
        for k, t in enumerate(range(60, 3_601, 60))
    ]  # fmt: skip
    summary = {"requests": requests, "served_pct": 90.0, "wait_s_mean": 240.0}
    return RunData(strategy, seed, summary, rides, samples)


def screenshot(report: Path, out: Path, profile: Path, height: int) -> Image.Image:
    run_chromium(profile, "--hide-scrollbars", f"--screenshot={out}",
                 f"--window-size=1280,{height}", report.as_uri())  # fmt: skip
    assert out.exists(), "no screenshot"
    return Image.open(out).convert("RGB")


def colour_counts(image: Image.Image) -> list[tuple[int, tuple[int, ...]]]:
    """(pixels, (r, g, b)) for each distinct colour of an RGB image."""
    return [
        (n, tuple(c) if isinstance(c, tuple) else (int(c),))
        for n, c in image.getcolors(1 << 24) or []
    ]


def near(image: Image.Image, rgb: tuple[int, int, int], within: int = 40) -> int:
    """How many pixels have a colour within ``within`` (sum of channel differences)."""
    return sum(
        n
        for n, c in colour_counts(image)
        if sum(abs(a - b) for a, b in zip(c, rgb, strict=True)) <= within
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = [synthetic_run(s, seed) for s in ("greedy", "batch") for seed in (1, 2)]
    comparison = Comparison(
        "wait_s_mean", "mean wait (s)", {"greedy": 250.0, "batch": 230.0}, "greedy", "batch",
        -20.0, -31.0, -9.0, 2,
    )  # fmt: skip
    directory = tmp_path_factory.mktemp("report")
    return write_report(
        directory, runs, title="Greedy against batch", warmup_s=600, comparisons=[comparison]
    )


@pytest.mark.slow
def test_the_top_of_the_report_is_not_blank_and_shows_both_strategies(
    report: Path, tmp_path: Path
) -> None:
    image = screenshot(report, tmp_path / "top.png", tmp_path / "profile", 2_000)
    assert image.size == (1280, 2000)
    colours = colour_counts(image)
    assert len(colours) > 500, f"only {len(colours)} distinct colours: a blank page?"
    white = sum(n for n, c in colours if min(c) >= 245)
    assert 1 - white / (1280 * 2000) > 0.08, "almost all white"
    for strategy, rgb in STRATEGY_COLOURS.items():
        assert near(image, rgb) > 1_000, f"{strategy}'s colour hardly shows"


@pytest.mark.slow
def test_the_whole_report_shows_the_map(report: Path, tmp_path: Path) -> None:
    image = screenshot(report, tmp_path / "whole.png", tmp_path / "profile", 6_000)
    assert near(image, VIRIDIS_MID, within=60) > 2_000, "no map colours"
    assert near(image, (0xD0, 0xD0, 0xD0), within=6) > 200, "no grey (thin) cells"
