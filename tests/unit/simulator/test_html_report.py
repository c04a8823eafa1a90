"""The simulator's HTML report (dispatch.simulator.html_report) on synthetic runs: the four
files, an HTML that loads nothing from anywhere, the data files matching the input, escaping,
and runs with nothing in them."""

from __future__ import annotations

import csv
import json
import math
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pytest

from dispatch.simulator.html_report import Comparison, RunData, write_report
from dispatch.simulator.results import RideRecord, Sample

WARMUP_S = 600.0
FILES = ("report.html", "timeseries.csv", "rides.csv", "summary.json")


def make_ride(rng: random.Random, i: int, requested_s: float, speed: float) -> RideRecord:
    """A request near 37.77,-122.42: mostly completed, some expired or cancelled."""
    lat, lng = 37.77 + rng.gauss(0, 0.015), -122.42 + rng.gauss(0, 0.02)
    ride = RideRecord(i, f"r{i}", requested_s, lat, lng, lat + 0.01, lng + 0.01)
    fate = rng.random()
    if fate < 0.08:
        ride.outcome = "expired"
        return ride
    ride.first_offer_s = requested_s + rng.uniform(1, 20) * speed
    ride.accepted_s = ride.first_offer_s + rng.uniform(2, 8)
    ride.eta_estimated_s = rng.uniform(60, 480)
    ride.eta_realised_s = ride.eta_estimated_s * rng.lognormvariate(0.1, 0.25)
    ride.arrived_s = ride.accepted_s + ride.eta_realised_s
    if fate < 0.14:
        ride.outcome, ride.ended_s = "cancelled", ride.arrived_s
        return ride
    ride.started_s = ride.arrived_s + 30
    ride.ended_s = ride.started_s + rng.uniform(300, 1500)
    ride.outcome = "completed"
    return ride


def make_samples(rides: list[RideRecord], end_s: float, drivers: int = 100) -> list[Sample]:
    samples, t = [], 60.0
    while t <= end_s:
        asked = [r for r in rides if r.requested_s <= t]
        served = sum(1 for r in asked if r.accepted_s is not None and r.accepted_s <= t)
        busy = sum(1 for r in asked if r.accepted_s and r.accepted_s <= t < (r.ended_s or 0))
        busy = min(busy, drivers)
        ended = [r for r in asked if (r.ended_s or math.inf) <= t]
        samples.append(
            Sample(
                t_s=t,
                requests=len(asked),
                waiting=len(asked) - served - sum(r.outcome == "expired" for r in asked) // 2,
                idle_drivers=drivers - busy - 3,
                offered_drivers=3,
                busy_drivers=busy,
                served=served,
                completed=sum(r.outcome == "completed" for r in ended),
                cancelled=sum(r.outcome == "cancelled" for r in ended),
                expired=sum(r.outcome == "expired" for r in asked if r.requested_s + 120 <= t),
            )
        )
        t += 60.0
    return samples


def make_run(strategy: str, seed: int, requests: int = 300, end_s: float = 3600.0) -> RunData:
    rng = random.Random(f"{strategy}/{seed}")
    speed = 0.6 if strategy == "batch" else 1.0
    times = sorted(rng.uniform(0, end_s) for _ in range(requests))
    rides = [make_ride(rng, i, t, speed) for i, t in enumerate(times)]
    waits = [w for r in rides if (w := r.wait_s) is not None]
    summary = {
        "strategy": strategy,
        "seed": seed,
        "requests": requests,
        "served_pct": 100.0 * len(waits) / requests,
        "wait_s_mean": sum(waits) / len(waits),
        "wait_s_p95": None,
        "utilisation_pct": 71.5,
        "market": "balanced",
        "outcomes": {"ok": 3},
    }
    return RunData(strategy, seed, summary, rides, make_samples(rides, end_s))


def comparisons() -> list[Comparison]:
    return [
        Comparison(
            "wait_s_mean", "mean wait (s)", {"greedy": 250.0, "batch": 210.0}, "greedy",
            "batch", -40.0, -55.0, -25.0, 2,
        ),
        Comparison(
            "served_pct", "served %", {"greedy": 91.0, "batch": None}, "greedy", "batch",
            None, None, None, 0,
        ),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def runs() -> list[RunData]:
    return [make_run(s, seed) for s in ("greedy", "batch") for seed in (1, 2)]


@pytest.fixture(scope="module")
def report(runs: list[RunData], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("report") / "nested" / "out"
    return write_report(
        directory,
        runs,
        title="Greedy against batch",
        warmup_s=WARMUP_S,
        comparisons=comparisons(),
        notes=["demand: synthetic"],
    )


def test_writes_the_four_files_and_leaves_no_temporary_file(report: Path) -> None:
    assert report.name == "report.html"
    assert sorted(p.name for p in report.parent.iterdir()) == sorted(FILES)


def test_the_html_loads_nothing_from_anywhere(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    low = text.lower()
    for bad in (
        'src="http',
        'href="http',
        "@import",
        "<script",
        "url(http",
        "<link",
        "<img",
        "data:",
    ):
        assert bad not in low, bad
    # The SVG prologue (XML declaration, DOCTYPE with the DTD's URL) and the RDF metadata
    # (with dc/cc namespace URLs) are stripped: the xmlns attributes of each <svg> element
    # are then the only 'http' URLs left, and they are names, never loaded.
    assert "<?xml" not in low and "<!doctype svg" not in low and "<metadata" not in low
    names = re.compile(r'\sxmlns(:\w+)?="http://www\.w3\.org/(2000/svg|1999/xlink)"')
    assert len(names.findall(text)) == 2 * text.count("<svg")
    assert not re.search(r"https?:|//[a-z]", names.sub("", text), re.I)
    # Every reference is inside the page (an SVG marker or clip path).
    refs = re.findall(r'(?:href|src)="([^"]*)"', text)
    assert refs and all(r.startswith("#") for r in refs)
    assert re.findall(r"url\(([^)]*)\)", text) and all(
        r.startswith("#") for r in re.findall(r"url\(([^)]*)\)", text)
    )


def test_one_svg_per_figure_with_ids_unique_in_the_page(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert text.count("<svg") == 4  # waits, pickup time, over time, map
    assert text.count("<figcaption>") == 4
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids))
    referenced = {r[1:] for r in re.findall(r'href="(#[^"]+)"', text)}
    assert referenced <= set(ids)
    assert "before the warm-up are left out" in text
    assert "fewer than 3 picked-up requests" in text


def test_tables_show_the_comparison_and_each_runs_figures(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert "mean wait (s)" in text and "batch &minus; greedy: -40.0 [-55.0, -25.0]" in text
    assert '<span class="sig">' in text  # the interval leaves out 0
    assert text.count("<tr>") >= 1 + 2 + 1 + 4  # comparison, runs table
    assert "wait p95 (s)" in text and "\u2013" in text  # None shows as a dash


def test_csv_rows_match_the_input(report: Path, runs: list[RunData]) -> None:
    with (report.parent / "rides.csv").open(encoding="utf-8", newline="") as f:
        rides = list(csv.DictReader(f))
    assert len(rides) == sum(len(r.rides) for r in runs)
    first = runs[0].rides[0]
    assert rides[0]["strategy"] == "greedy" and rides[0]["seed"] == "1"
    assert float(rides[0]["requested_s"]) == first.requested_s
    wait = runs[0].rides[0].wait_s
    assert rides[0]["wait_s"] == ("" if wait is None else repr(wait))
    with (report.parent / "timeseries.csv").open(encoding="utf-8", newline="") as f:
        samples = list(csv.DictReader(f))
    assert len(samples) == sum(len(r.samples) for r in runs)
    assert {(s["strategy"], s["seed"]) for s in samples} == {
        (r.strategy, str(r.seed)) for r in runs
    }
    assert float(samples[5]["utilisation"]) == round(runs[0].samples[5].utilisation, 4)


def test_summary_json_round_trips(report: Path, runs: list[RunData]) -> None:
    doc = json.loads((report.parent / "summary.json").read_text(encoding="utf-8"))
    assert doc["warmup_s"] == WARMUP_S and doc["notes"] == ["demand: synthetic"]
    assert [(r["strategy"], r["seed"], r["summary"]) for r in doc["runs"]] == [
        (r.strategy, r.seed, r.summary) for r in runs
    ]
    assert doc["comparisons"] == [asdict(c) for c in comparisons()]


def test_non_finite_numbers_become_null_and_a_dash(tmp_path: Path) -> None:
    run = RunData("greedy", 1, {"wait_s_mean": math.nan, "requests": 0}, [], [])
    path = write_report(tmp_path, [run], title="t", warmup_s=0)
    doc = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert doc["runs"][0]["summary"]["wait_s_mean"] is None
    text = path.read_text(encoding="utf-8")
    assert ">nan<" not in text.lower() and "<td>\u2013</td>" in text


def test_reports_can_be_written_from_threads_at_once(tmp_path: Path) -> None:
    runs = [make_run("greedy", 1, requests=120)]

    def write(i: int) -> str:
        path = write_report(tmp_path / str(i), runs, title=f"t{i}", warmup_s=WARMUP_S)
        return path.read_text(encoding="utf-8")

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(write, range(4)))
    assert all(t.count("<svg") == 4 for t in texts)


@pytest.mark.parametrize(
    "runs",
    [
        pytest.param([], id="no run"),
        pytest.param([RunData("greedy", 1, {}, [], [])], id="a run with nothing"),
        pytest.param(
            [RunData("greedy", 1, {}, [], make_run("greedy", 1).samples)], id="no request"
        ),
        pytest.param(
            [
                RunData(
                    "greedy",
                    1,
                    {},
                    [
                        RideRecord(i, f"r{i}", 900.0, 37.77, -122.42, 0, 0, "expired")
                        for i in range(9)
                    ],
                    [],
                )
            ],
            id="no ride picked up",
        ),
    ],
)
def test_empty_inputs_say_no_data(tmp_path: Path, runs: list[RunData]) -> None:
    path = write_report(tmp_path / "r", runs, title="empty", warmup_s=WARMUP_S)
    text = path.read_text(encoding="utf-8")
    assert "No data" in text
    assert all((path.parent / name).exists() for name in FILES)
    with (path.parent / "rides.csv").open(encoding="utf-8", newline="") as f:
        assert len(list(csv.reader(f))) == 1 + sum(len(r.rides) for r in runs)


def test_strings_are_escaped(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    run = make_run("greedy", 1, requests=60)
    run = RunData(evil, 1, {"market": evil, evil: 1}, run.rides, run.samples)
    path = write_report(tmp_path, [run], title=evil, warmup_s=0, notes=[evil, 'a "b" & c'])
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
    assert "a &quot;b&quot; &amp; c" in text


@pytest.mark.slow
def test_twenty_large_runs_stay_under_three_megabytes(tmp_path: Path) -> None:
    runs = [
        make_run(s, seed, requests=2_000, end_s=7_200.0)
        for s in ("greedy", "batch")
        for seed in range(10)
    ]
    path = write_report(tmp_path, runs, title="big", warmup_s=WARMUP_S)
    assert path.stat().st_size < 3_000_000
    picked = sum(
        1
        for r in runs
        for ride in r.rides
        if ride.requested_s >= WARMUP_S and ride.eta_realised_s is not None
    )
    assert f"1,200 of {picked:,} points shown" in path.read_text(encoding="utf-8")
