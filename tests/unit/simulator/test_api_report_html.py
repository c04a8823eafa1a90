"""The report of a run against a deployment as files (``dispatch.simulator.apps.html``), and
the timeline it is drawn from (``Endpoints.timeline``): the four files, an HTML page that
loads nothing, every call in calls.csv, escaping, and a run with nothing in it."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from dispatch.simulator.apps import figures
from dispatch.simulator.apps.html import write_api_report
from dispatch.simulator.apps.stats import Endpoints, LoopMonitor

FILES = ("report.html", "summary.json", "rides.csv", "calls.csv")


def recorder_with_calls() -> Endpoints:
    """Calls planned about 2 s and 7 s into a run started 10 s ago (warm-up 5 s, 60 s
    long)."""
    recorder = Endpoints()
    recorder.start(time.monotonic() - 10.0, warmup_s=5.0, run_s=60.0)
    recorder.call("POST /rides", 201, latency_s=8.0, send_lag_s=0.001)  # planned ~2 s
    recorder.call("POST /rides", 503, latency_s=3.0, send_lag_s=0.002)  # planned ~7 s
    recorder.call("POST /rides", 201, latency_s=3.0, send_lag_s=0.0)
    recorder.call("GET /drivers/{id}/offers", 200, latency_s=9.5, send_lag_s=0.0)
    return recorder


def quantiles(p50: float | None) -> dict[str, float | None]:
    return {"p50": p50, "p95": p50, "p99": p50, "max": p50}


def make_doc(recorder: Endpoints, rides: list[dict[str, Any]]) -> dict[str, Any]:
    monitor = LoopMonitor()
    monitor.at.extend([0.5, 6.0])
    monitor.lags.extend([0.002, 0.120])
    seconds = {"p50": 4.0, "p95": 9.0, "mean": 5.0}
    return {
        "target": "http://127.0.0.1:8000",
        "drivers": 3, "minutes": 0.2, "seed": 1, "demand_per_min": 10.0, "profile": "flat",
        "open_loop": False, "city_km": 2.0, "speed_kmh": 60.0, "signed_in_s": 1.2,
        "warmup_s": 5.0,
        "service": {"planned": len(rides), "not_sent": 0, "requested": len(rides),
                    "refused": 0, "refused_by": {}, "served": 1, "served_pct": 100.0,
                    "completed": 1, "cancelled": 0, "cancelled_at_close": 0, "expired": 0,
                    "unfinished": 0, "accept_wait_s": seconds, "pickup_wait_s": seconds,
                    "riders_registered": 1, "riders": 1},
        "drivers_did": {"accepted": 1},
        "rate_limited": 0, "token_refresh_failures": 0,
        "endpoints": recorder.as_dict(),
        "client": {"loop_lag_ms": quantiles(2.0), "stalled_s": 0.1, "cpu_s": 0.5,
                   "cpu_share": 0.05, "cpu_ms_per_driver_s": 16.0},
        "timeline": {"bucket_s": 5.0, "endpoints": recorder.timeline(5.0),
                     "loop_lag_max_ms": monitor.timeline(5.0)},
        "rides": rides,
    }  # fmt: skip


RIDE = {"index": 0, "planned_s": 1.0, "status": 201, "refused": "", "ride_id": "r-1",
        "accepted_s": 5.0, "arrived_s": 40.0, "started_s": 41.0, "ended_s": 90.0,
        "end": "completed", "cancel_planned": False, "closed": False}  # fmt: skip


def test_the_timeline_buckets_calls_by_planned_time_and_counts_the_failed() -> None:
    rows = recorder_with_calls().timeline(5.0)["POST /rides"]
    assert [row[0] for row in rows] == [0.0, 5.0]
    first, second = rows
    assert first[1:3] == [1, 0] and first[3] == first[4] == 8000.0
    assert second[1:3] == [2, 1] and second[3] == 3000.0  # the 503 failed


def test_the_steady_latencies_leave_out_the_calls_planned_in_the_warm_up() -> None:
    endpoint = recorder_with_calls().as_dict()["POST /rides"]
    assert endpoint["calls"] == 3 and endpoint["steady_calls"] == 2
    assert endpoint["steady_latency_ms"]["max"] == 3000.0
    assert endpoint["latency_ms"]["max"] == 8000.0


def test_the_report_writes_four_files_and_a_page_that_loads_nothing(tmp_path: Path) -> None:
    recorder = recorder_with_calls()
    path = write_api_report(tmp_path / "out", make_doc(recorder, [RIDE]), recorder)
    assert path == tmp_path / "out" / "report.html"
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(FILES)
    page = path.read_text()
    assert "<script" not in page.lower() and "src=" not in page
    assert "default-src 'none'" in page  # and its policy forbids loading anything
    assert "http://127.0.0.1:8000" in page  # the target is named, never loaded
    assert page.count("<svg") == 4  # latency, calls, waits, stalls
    assert "POST /rides" in page and "503: 1" in page


def test_the_steady_latencies_leave_out_the_calls_planned_after_the_run_s_minutes() -> None:
    recorder = Endpoints()
    recorder.start(time.monotonic() - 100.0, warmup_s=5.0, run_s=60.0)
    recorder.call("POST /drivers/{id}/offline", 200, latency_s=0.5, send_lag_s=0.0)  # ~99.5 s
    recorder.call("POST /drivers/{id}/offline", 200, latency_s=50.0, send_lag_s=0.0)  # ~50 s
    endpoint = recorder.as_dict()["POST /drivers/{id}/offline"]
    assert endpoint["calls"] == 2 and endpoint["steady_calls"] == 1
    assert endpoint["steady_latency_ms"]["max"] == 50000.0


def test_calls_made_before_the_run_started_have_negative_times() -> None:
    recorder = Endpoints()
    recorder.call("POST /drivers", 201, latency_s=0.2, send_lag_s=0.0)  # while signing in
    recorder.start(time.monotonic() + 3.0, warmup_s=5.0, run_s=60.0)
    [(name, t, *_)] = list(recorder.calls())
    assert name == "POST /drivers" and -3.5 < t < -3.0
    assert recorder.timeline(5.0)["POST /drivers"] == []  # the timeline is the run's


def test_calls_csv_holds_every_call_and_summary_json_the_report(tmp_path: Path) -> None:
    recorder = recorder_with_calls()
    doc = make_doc(recorder, [RIDE])
    write_api_report(tmp_path, doc, recorder)
    with (tmp_path / "calls.csv").open() as f:
        calls = list(csv.DictReader(f))
    assert len(calls) == 4
    assert sorted(int(c["status"]) for c in calls) == [200, 201, 201, 503]
    assert {c["endpoint"] for c in calls} == {"POST /rides", "GET /drivers/{id}/offers"}
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(doc))
    with (tmp_path / "rides.csv").open() as f:
        assert [row["ride_id"] for row in csv.DictReader(f)] == ["r-1"]


def test_names_from_the_deployment_are_escaped(tmp_path: Path) -> None:
    recorder = recorder_with_calls()
    doc = make_doc(recorder, [RIDE])
    doc["target"] = "http://127.0.0.1:8000/<b>x</b>"
    doc["endpoints"]["POST /rides"]["rate_limited"] = {"<img onerror=x>": 2}
    page = write_api_report(tmp_path, doc, recorder).read_text()
    assert "<b>x</b>" not in page and "<img onerror" not in page
    assert "&lt;img onerror=x&gt;" in page


def test_a_run_with_no_call_and_no_ride_says_there_is_no_data(tmp_path: Path) -> None:
    recorder = Endpoints()
    doc = make_doc(recorder, [])
    doc["timeline"]["loop_lag_max_ms"] = []
    page = write_api_report(tmp_path, doc, recorder).read_text()
    assert "<svg" not in page
    assert page.count('class="nodata"') == 4
    assert (tmp_path / "calls.csv").read_text().splitlines() == [
        "endpoint,planned_s,latency_ms,send_lag_ms,status,pool_wait_ms"
    ]


def test_a_last_bucket_cut_short_by_the_run_s_end_is_a_rate_over_the_time_it_covers() -> None:
    timeline = {"E": [[0.0, 10, 0, 1.0, 1.0], [5.0, 4, 2, 1.0, 1.0]],
                "F": [[5.0, 2, 0, 1.0, 1.0]]}  # fmt: skip
    # 10 calls in 5 s, then 6 (2 failed) in the 2 s the run covered
    assert figures.call_rates(timeline, 5.0, ended_s=7.0) == [(0.0, 2.0, 0.0), (5.0, 3.0, 1.0)]
    assert figures.call_rates(timeline, 5.0) == [(0.0, 2.0, 0.0), (5.0, 1.2, 0.4)]  # no end
    assert figures.call_rates(timeline, 5.0, ended_s=5.2)[1] == (5.0, 6.0, 2.0)  # >= 1 s


def test_the_report_names_the_commands_still_pending_at_the_end(tmp_path: Path) -> None:
    recorder = recorder_with_calls()
    recorder.call("POST /rides", 202, latency_s=9.0, send_lag_s=0.0, pending=True)
    path = write_api_report(tmp_path, make_doc(recorder, [RIDE]), recorder)
    assert "still pending: 1" in path.read_text()
    assert (
        json.loads((tmp_path / "summary.json").read_text())["endpoints"]["POST /rides"][
            "pending_at_end"
        ]
        == 1
    )
