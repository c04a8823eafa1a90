"""The report of a run against a deployment as files: ``report.html`` (self-contained:
inline CSS and SVG, no script, nothing loaded from anywhere), with the data beside it:
``summary.json`` (the run's JSON report), ``rides.csv`` (every planned request as its
rider's app saw it) and ``calls.csv`` (every call: endpoint, planned time, latency, send
lag, last status).

``dispatch simulate --api URL --report DIR`` writes it; the layout and style are those of
the in-process runs' report (``dispatch.simulator.html_report``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from dispatch.files import write_text
from dispatch.simulator.apps import figures
from dispatch.simulator.apps.stats import Endpoints
from dispatch.simulator.html_report import csv_text, figure, fmt, jsonable, page, table

CALL_COLUMNS = ["endpoint", "planned_s", "latency_ms", "send_lag_ms", "status", "pool_wait_ms"]


def write_api_report(directory: Path, doc: dict[str, Any], endpoints: Endpoints) -> Path:
    """Write the four files into ``directory`` (made if need be), each atomically; return
    the HTML file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    write_text(directory / "calls.csv", csv_text(CALL_COLUMNS, _call_rows(endpoints)))
    rides: list[dict[str, Any]] = doc.get("rides", [])
    columns = list(rides[0]) if rides else ["index", "planned_s"]
    write_text(directory / "rides.csv", csv_text(columns, ([r[c] for c in columns] for r in rides)))
    text = json.dumps(jsonable(doc), indent=2, allow_nan=False, default=str) + "\n"
    write_text(directory / "summary.json", text)
    path = directory / "report.html"
    write_text(path, render(doc))
    return path


def _call_rows(endpoints: Endpoints) -> Iterator[list[Any]]:
    for name, t, lat, lag, status, pool in endpoints.calls():
        yield [name, round(t, 3), round(lat * 1000.0, 2), round(lag * 1000.0, 2), status,
               round(pool * 1000.0, 2)]  # fmt: skip


def render(doc: dict[str, Any]) -> str:
    """The whole report as one HTML document, from the run's JSON report."""
    timeline = doc.get("timeline", {})
    by_endpoint = timeline.get("endpoints", {})
    bucket_s = float(timeline.get("bucket_s", 5.0))
    warmup_s = float(doc.get("warmup_s", 0.0))
    latency = figures.latency_over_time(by_endpoint, bucket_s, warmup_s)
    ended = timeline.get("ended_s")
    calls = figures.calls_over_time(
        by_endpoint, bucket_s, warmup_s, None if ended is None else float(ended)
    )
    stalls = figures.client_stalls(timeline.get("loop_lag_max_ms", []), bucket_s)
    title = f"Against {doc['target']}: {doc['drivers']} drivers, {doc['minutes']:g} min"
    body = [
        f"<h1>{escape(title)}</h1>",
        _meta(doc),
        _service(doc["service"]),
        _endpoints(doc["endpoints"]),
        figure("Latency over the run", latency, "no call answered"),
        figure("Calls over the run", calls, "no call"),
        figure("Riders' waits", figures.waits(doc.get("rides", [])), "no ride accepted"),
        _client(doc["client"], doc),
        figure("The client's stalls", stalls, "no probe"),
        _drivers(doc.get("drivers_did", {})),
        '<p class="meta">Beside this file: summary.json (the run\'s JSON report), rides.csv '
        "(every planned request as its rider's app saw it), calls.csv (every call: endpoint, "
        "planned time from the run's start, latency, send lag, last status, pool wait).</p>",
    ]
    return page(title, body)


def _meta(doc: dict[str, Any]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    shape = doc["profile"] + (", open loop" if doc.get("open_loop") else "")
    return (
        f'<p class="meta">Seed {escape(str(doc["seed"]))}; profile {escape(shape)}; demand '
        f"{escape(fmt(doc.get('demand_per_min')))} requests a minute; city "
        f"{escape(fmt(doc.get('city_km')))} km; vehicles at {escape(fmt(doc.get('speed_kmh')))} "
        f"km/h. The city signed in in {escape(fmt(doc.get('signed_in_s')))} s (not part of "
        f"the run's time). Warm-up: the first {escape(fmt(doc.get('warmup_s')))} s, left out "
        f"of the steady latencies. Written {when}.</p>"
    )


def _rows(pairs: Sequence[tuple[str, Any]]) -> list[list[str]]:
    return [[escape(label), escape(fmt(value))] for label, value in pairs]


def _service(s: dict[str, Any]) -> str:
    pairs = [
        ("requests planned", s["planned"]),
        ("not sent (the run closed first)", s["not_sent"]),
        ("sent", s["requested"]),
        ("refused", s["refused"]),
        ("served (a driver accepted)", s["served"]),
        ("served % (of those decided)", s["served_pct"]),
        ("completed", s["completed"]),
        ("cancelled (of which at the run's close)",
         f"{s['cancelled']} ({s['cancelled_at_close']})"),
        ("expired", s["expired"]),
        ("not seen to end", s["unfinished"]),
        ("wait for a driver p50 / p95 (s)",
         f"{fmt(s['accept_wait_s']['p50'])} / {fmt(s['accept_wait_s']['p95'])}"),
        ("pickup wait p50 / p95 (s)",
         f"{fmt(s['pickup_wait_s']['p50'])} / {fmt(s['pickup_wait_s']['p95'])}"),
    ]  # fmt: skip
    refused = s.get("refused_by") or {}
    pairs += [(f"refused: {reason}", n) for reason, n in sorted(refused.items())]
    return "<h2>Service, as the apps saw it</h2>" + table(["", "figure"], _rows(pairs))


def _endpoints(endpoints: dict[str, Any]) -> str:
    header = ["endpoint", "calls", "last status", "retries", "p50", "p95", "p99", "max",
              "send lag p99", "pool wait p99", "rate limits met"]  # fmt: skip
    rows = []
    for name, e in endpoints.items():
        lat = e["steady_latency_ms"]
        statuses = ", ".join(f"{k}: {v:,}" for k, v in e["final_status"].items())
        if e.get("pending_at_end"):
            statuses += f" (still pending: {e['pending_at_end']:,})"
        limits = "; ".join(f"{k} ({v:,})" for k, v in e["rate_limited"].items())
        quantiles = [escape(fmt(lat[q])) for q in ("p50", "p95", "p99", "max")]
        lag = escape(fmt(e["send_lag_ms"]["p99"]))
        pool = escape(fmt(e.get("pool_wait_ms", {}).get("p99")))
        rows.append([escape(name), fmt(e["calls"]), escape(statuses), fmt(e["retries"]),
                     *quantiles, lag, pool, escape(limits) or "&ndash;"])  # fmt: skip
    caption = (
        "Latencies (ms) after the warm-up, from the planned send time to the last answer, "
        "retries included. Last status: each call's final answer (0: none, retries given "
        "up; still pending: a command answered 202 pending in its last round, its outcome "
        "never learnt). Send lag: how late the client sent, its own delay; pool wait: how long "
        "its attempts waited for a connection of the client's pool (--connections), its own "
        "shortage. For a stream "
        "(…/offers, …/events) a call is one connection and its latency the time to its "
        "response's headers."
    )
    return ("<h2>By endpoint</h2>" + table(header, rows, 3)
            + f"<p class=meta>{escape(caption)}</p>")  # fmt: skip


def _client(c: dict[str, Any], doc: dict[str, Any]) -> str:
    pairs = [
        ("CPU (s)", c["cpu_s"]),
        ("share of one core", c["cpu_share"]),
        ("CPU per driver (ms a second)", c["cpu_ms_per_driver_s"]),
        ("loop lag p99 / max (ms)",
         f"{fmt(c['loop_lag_ms']['p99'])} / {fmt(c['loop_lag_ms']['max'])}"),
        ("summed stalls over 20 ms (s)", c["stalled_s"]),
        ("429s met (all attempts)", doc.get("rate_limited")),
        ("token refreshes that failed", doc.get("token_refresh_failures")),
    ]  # fmt: skip
    return "<h2>The client</h2>" + table(["", "figure"], _rows(pairs))


def _drivers(did: dict[str, Any]) -> str:
    if not did:
        return ""
    return "<h2>What the drivers did</h2>" + table(["", "times"], _rows(list(did.items())))
