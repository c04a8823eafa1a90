"""A report of simulation runs that a transport planner reads: one self-contained HTML file
(inline CSS, plots as inline SVG, no script, nothing loaded from anywhere) with the data
behind it beside it: ``timeseries.csv``, ``rides.csv`` and ``summary.json``.

``write_report`` is what ``dispatch simulate --report DIR`` and ``dispatch experiment ...
--report DIR`` call. The figures are drawn in ``plots``; requests made during the warm-up
are left out of them (the time series shade the warm-up instead).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from dispatch.files import write_text
from dispatch.simulator import plots
from dispatch.simulator.results import RideRecord, Sample

MISSING = "\u2013"  # an en dash
# The summary figures of the runs table, in this order, each shown when a run has its key.
KEY_FIGURES = (
    ("requests", "requests"),
    ("served_pct", "served %"),
    ("wait_s_mean", "wait mean (s)"),
    ("wait_s_p95", "wait p95 (s)"),
    ("pickup_eta_s_mean", "pickup ETA mean (s)"),
    ("pickup_realised_s_mean", "pickup realised mean (s)"),
    ("eta_error_s_mean", "ETA error mean (s)"),
    ("utilisation_pct", "utilisation %"),
    ("rejection_pct", "rejected %"),
    ("rejection_rate", "rejection rate"),
    ("empty_distance_pct", "empty distance %"),
    ("empty_distance_share", "empty-distance share"),
    ("empty_km", "empty km"),
    ("pickup_m_mean", "pickup leg mean (m)"),
    ("in_vehicle_s_mean", "in-vehicle mean (s)"),
    ("market", "market"),
)
# The scheduled rides' figures (``--scheduled-share``), in a table of their own shown when
# a run booked any (docs/SIMULATION.md, "Scheduled rides").
SCHEDULED_FIGURES = (
    ("scheduled_booked", "booked"),
    ("scheduled_dispatched", "dispatched"),
    ("scheduled_served", "served"),
    ("scheduled_cancelled", "cancelled"),
    ("scheduled_expired", "expired"),
    ("scheduled_overdue", "overdue"),
    ("scheduled_on_time_pct", "on time %"),
    ("scheduled_late_s_p50", "lateness p50 (s)"),
    ("scheduled_late_s_p95", "lateness p95 (s)"),
    ("scheduled_early_s_mean", "early mean (s)"),
)
RIDE_COLUMNS = [f.name for f in fields(RideRecord)] + ["wait_s", "in_vehicle_s"]
SAMPLE_COLUMNS = [f.name for f in fields(Sample)] + ["utilisation"]
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
 margin:0 auto;max-width:1180px;padding:16px 24px}
h1{font-size:26px;margin:8px 0}h2{font-size:20px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#555}figure{margin:8px 0 20px}figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#444;font-size:13px;max-width:900px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.sw{display:inline-block;width:10px;height:10px;margin-right:6px}
.scroll{overflow-x:auto}.nodata{color:#888;font-style:italic}.sig{font-weight:bold}
"""


@dataclass(frozen=True)
class RunData:
    """One simulation run: its JSON report and what it recorded."""

    strategy: str
    seed: int
    summary: dict[str, Any]  # the run's JSON report (numbers, strings, None)
    rides: Sequence[RideRecord]
    samples: Sequence[Sample]


@dataclass(frozen=True)
class Comparison:
    """One metric of a paired experiment: two strategies over the same seeds."""

    metric: str  # e.g. "wait_s_mean"
    label: str  # e.g. "mean wait (s)"
    means: dict[str, float | None]  # strategy -> mean over seeds
    baseline: str  # e.g. "greedy"
    other: str  # e.g. "batch"
    diff_mean: float | None  # other - baseline, mean of per-seed differences
    ci_low: float | None
    ci_high: float | None
    n: int


def write_report(
    directory: Path,
    runs: Sequence[RunData],
    *,
    title: str,
    warmup_s: float,
    comparisons: Sequence[Comparison] = (),
    notes: Sequence[str] = (),
) -> Path:
    """Write report.html, timeseries.csv, rides.csv and summary.json into ``directory``
    (made if need be), each atomically; return the HTML file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    write_text(directory / "timeseries.csv", _timeseries_csv(runs))
    write_text(directory / "rides.csv", _rides_csv(runs))
    summary = _summary(runs, title, warmup_s, comparisons, notes)
    write_text(directory / "summary.json", summary)
    path = directory / "report.html"
    write_text(path, render_html(runs, title, warmup_s, comparisons, notes))
    return path


def csv_text(header: list[str], rows: Iterable[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _timeseries_csv(runs: Sequence[RunData]) -> str:
    rows = ([run.strategy, run.seed, *s.as_row().values()] for run in runs for s in run.samples)
    return csv_text(["strategy", "seed", *SAMPLE_COLUMNS], rows)


def _rides_csv(runs: Sequence[RunData]) -> str:
    rows = (
        [run.strategy, run.seed, *r.as_row().values(), r.wait_s, r.in_vehicle_s]
        for run in runs
        for r in run.rides
    )
    return csv_text(["strategy", "seed", *RIDE_COLUMNS], rows)


def _summary(
    runs: Sequence[RunData],
    title: str,
    warmup_s: float,
    comparisons: Sequence[Comparison],
    notes: Sequence[str],
) -> str:
    doc = {
        "title": title,
        "warmup_s": warmup_s,
        "notes": list(notes),
        "runs": [{"strategy": r.strategy, "seed": r.seed, "summary": r.summary} for r in runs],
        "comparisons": [asdict(c) for c in comparisons],
    }
    return json.dumps(jsonable(doc), indent=2, allow_nan=False, default=str) + "\n"


def jsonable(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def render_html(
    runs: Sequence[RunData],
    title: str,
    warmup_s: float,
    comparisons: Sequence[Comparison] = (),
    notes: Sequence[str] = (),
) -> str:
    """The whole report as one HTML document."""
    strategies = list(dict.fromkeys(r.strategy for r in runs))
    colour = plots.colours(strategies)
    rides = {s: _after_warmup(runs, s, warmup_s) for s in strategies}
    samples = {s: [r.samples for r in runs if r.strategy == s] for s in strategies}
    body = [
        f"<h1>{escape(title)}</h1>",
        _meta(runs, strategies, colour, warmup_s),
        _notes(notes),
        _comparisons(comparisons),
        figure("Waits", plots.wait_ecdf(rides, colour), "no request after the warm-up"),
        figure("Pickup time", plots.pickup_scatter(rides, colour), "no picked-up request"),
        figure("Over time", plots.timeseries(samples, colour, warmup_s), "no market sample"),
        figure("Where riders wait", plots.hex_map(rides), "no picked-up request"),
        _runs_table(runs, colour),
        _scheduled_table(runs, colour),
        _all_figures(runs),
        '<p class="meta">Beside this file: timeseries.csv (the market samples), rides.csv '
        "(every request), summary.json (the runs' reports and the comparisons).</p>",
    ]
    return page(title, body)


def page(title: str, parts: Sequence[str]) -> str:
    """A page of the report's style around ``parts`` (HTML, empty ones left out). Its
    Content-Security-Policy lets it load nothing and run nothing: text from a run (names,
    reasons from a deployment) could never fetch or execute anything, escaped or not."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(part for part in parts if part)
        + "\n</body></html>\n"
    )


def _after_warmup(runs: Sequence[RunData], strategy: str, warmup_s: float) -> list[RideRecord]:
    return [
        ride
        for run in runs
        if run.strategy == strategy
        for ride in run.rides
        if ride.requested_s >= warmup_s and ride.scheduled_s is None
    ]


def _swatch(colour: str) -> str:
    return f'<span class="sw" style="background:{escape(colour)}"></span>'


def _meta(
    runs: Sequence[RunData], strategies: list[str], colour: dict[str, str], warmup_s: float
) -> str:
    if not runs:
        return '<p class="nodata">No run: no data.</p>'
    listed = "; ".join(
        f"{_swatch(colour[s])}{escape(s)}: seeds "
        + escape(", ".join(str(r.seed) for r in runs if r.strategy == s))
        for s in strategies
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<p class="meta">{len(runs)} runs. {listed}.<br>Warm-up: the first '
        f"{warmup_s / 60:g} simulated minutes; requests made then are left out of the "
        f"figures. Written {when}.</p>"
    )


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return "<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"


def fmt(value: Any) -> str:
    """A figure for a table: thousands separated, a sensible number of digits, a dash for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"
    if isinstance(value, list | dict):
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


def _signed(value: float | None) -> str:
    return MISSING if value is None else ("+" if value > 0 else "") + fmt(value)


def table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> str:
    """An HTML table of already escaped cells; the first ``left`` columns align left."""

    def cells(tag: str, row: Sequence[str]) -> str:
        return "".join(
            f"<{tag}{' class=l' if i < left else ''}>{c}</{tag}>" for i, c in enumerate(row)
        )

    head = f"<tr>{cells('th', header)}</tr>"
    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f'<div class="scroll"><table>{head}{body}</table></div>'


def _comparisons(comparisons: Sequence[Comparison]) -> str:
    if not comparisons:
        return ""
    strategies = list(dict.fromkeys(s for c in comparisons for s in c.means))
    header = ["metric", *(f"mean: {escape(s)}" for s in strategies)]
    header += ["difference (95% CI)", "pairs"]
    rows = [_comparison_row(c, strategies) for c in comparisons]
    caption = (
        "Each difference is the other strategy minus the baseline, the mean of the per-seed "
        "differences with its 95% confidence interval; bold where the interval leaves out 0."
    )
    return "<h2>Comparison</h2>" + table(header, rows, 1) + f"<p class=meta>{caption}</p>"


def _comparison_row(c: Comparison, strategies: list[str]) -> list[str]:
    diff = (
        f"{escape(c.other)} &minus; {escape(c.baseline)}: {_signed(c.diff_mean)} "
        f"[{_signed(c.ci_low)}, {_signed(c.ci_high)}]"
    )
    low, high = c.ci_low, c.ci_high
    if low is not None and high is not None and (low > 0 or high < 0):
        diff = f'<span class="sig">{diff}</span>'
    label = f"{escape(c.label)} <small>({escape(c.metric)})</small>"
    return [label, *(escape(fmt(c.means.get(s))) for s in strategies), diff, fmt(c.n)]


def figure(heading: str, plot: plots.Plot | None, missing: str) -> str:
    if plot is None:
        return f'<h2>{escape(heading)}</h2><p class="nodata">No data: {escape(missing)}.</p>'
    return (
        f"<h2>{escape(heading)}</h2><figure>{plot.svg}"
        f"<figcaption>{escape(plot.caption)}</figcaption></figure>"
    )


def _runs_table(runs: Sequence[RunData], colour: dict[str, str]) -> str:
    if not runs:
        return ""
    keys = [(k, label) for k, label in KEY_FIGURES if any(k in r.summary for r in runs)]
    header = ["strategy", "seed", *(escape(label) for _, label in keys)]
    rows = [
        [f"{_swatch(colour[r.strategy])}{escape(r.strategy)}", escape(str(r.seed))]
        + [escape(fmt(r.summary.get(k))) for k, _ in keys]
        for r in runs
    ]
    caption = (
        f"Each run's figures as its own report gives them; a dash ({MISSING}) marks a "
        "figure the report does not have. Every figure is in summary.json and in the list "
        "below."
    )
    return "<h2>Runs</h2>" + table(header, rows, 2) + f"<p class=meta>{escape(caption)}</p>"


def _scheduled_table(runs: Sequence[RunData], colour: dict[str, str]) -> str:
    if not any(r.summary.get("bookings_total") for r in runs):
        return ""
    header = ["strategy", "seed", *(escape(label) for _, label in SCHEDULED_FIGURES)]
    rows = [
        [f"{_swatch(colour[r.strategy])}{escape(r.strategy)}", escape(str(r.seed))]
        + [escape(fmt(r.summary.get(k))) for k, _ in SCHEDULED_FIGURES]
        for r in runs
    ]
    caption = (
        "Rides booked ahead whose time came after the warm-up. On time: the driver arrived "
        "no later than 2 minutes after the time booked (of the rides that reached their "
        "time without the rider cancelling; those that expired count as late). Lateness: "
        "how long after the time the driver arrived, 0 when early; early: how long before "
        "it, 0 when late. The figures and plots above are the immediate requests' alone."
    )
    rendered = table(header, rows, 2)
    return f"<h2>Scheduled rides</h2>{rendered}<p class=meta>{escape(caption)}</p>"


def _all_figures(runs: Sequence[RunData]) -> str:
    keys = list(dict.fromkeys(k for r in runs for k in r.summary))
    if not keys:
        return ""
    header = ["strategy", "seed", *(escape(k) for k in keys)]
    rows = [
        [escape(r.strategy), escape(str(r.seed))] + [escape(fmt(r.summary.get(k))) for k in keys]
        for r in runs
    ]
    return (
        "<details><summary>Every figure of every run's report</summary>"
        + table(header, rows, 2)
        + "</details>"
    )
