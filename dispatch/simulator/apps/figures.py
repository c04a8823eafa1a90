"""The figures of a run against a deployment (``apps.html``), as inline SVG: latency and
calls over the run by endpoint, the riders' waits, and the client's own stalls.

Drawn from the JSON report alone (its ``timeline`` and ``rides``), so a report saved with
``--json`` can be drawn again. Only matplotlib's object API is used, as in
``dispatch.simulator.plots``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from dispatch.simulator.plots import PALETTE, Plot, ecdf, shade_warmup, to_svg

MAX_LINES = 8  # endpoints drawn in a latency panel: the most called

Timeline = Mapping[str, Sequence[Sequence[Any]]]


def calls_of(timeline: Timeline) -> dict[str, int]:
    return {name: sum(int(row[1]) for row in rows) for name, rows in timeline.items()}


def _answered(timeline: Timeline) -> list[str]:
    """The endpoints drawn: the most called first."""
    calls = calls_of(timeline)
    names = [n for n in timeline if calls[n] > 0]
    return sorted(names, key=lambda n: (-calls[n], n))[:MAX_LINES]


def latency_over_time(timeline: Timeline, bucket_s: float, warmup_s: float) -> Plot | None:
    names = _answered(timeline)
    if not names:
        return None
    fig = Figure(figsize=(11, 6.4), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, column, label in ((axes[0], 3, "p50"), (axes[1], 4, "p99")):
        for i, name in enumerate(names):
            rows = [r for r in timeline[name] if r[column] is not None]
            ax.plot([r[0] / 60.0 for r in rows], [max(0.1, r[column]) for r in rows],
                    color=PALETTE[i % len(PALETTE)], linewidth=1.3, label=name)  # fmt: skip
        ax.set_yscale("log")
        ax.set(ylabel=f"{label} latency (ms, log)", title=f"{label} of the calls planned in "
               f"each {bucket_s:g} s")  # fmt: skip
        ax.grid(alpha=0.3, which="both")
        shade_warmup(ax, warmup_s)
    axes[1].set_xlabel("time from the run's start (min)")
    axes[0].legend(loc="upper left", fontsize=7, ncols=2)
    caption = (
        "Latency of each call from the time its app planned to send it to its last answer "
        "(retries included; a stream's, to its response's headers), by endpoint (the most "
        "called), in buckets of "
        f"{bucket_s:g} s; a gap is a bucket without calls. The warm-up is shaded."
    )
    return Plot(to_svg(fig, "latency"), caption)


def call_rates(
    timeline: Timeline, bucket_s: float, ended_s: float | None = None
) -> list[tuple[float, float, float]]:
    """``(start_s, calls/s, failed/s)`` by bucket, all endpoints; a bucket cut short by the
    run's end (``ended_s``) is divided by the time it covers, not by the whole width."""
    totals: dict[float, list[int]] = {}
    for rows in timeline.values():
        for row in rows:
            got = totals.setdefault(float(row[0]), [0, 0])
            got[0] += int(row[1])
            got[1] += int(row[2])
    out = []
    for t in sorted(totals):
        width = _covered(t, bucket_s, ended_s)
        out.append((t, totals[t][0] / width, totals[t][1] / width))
    return out


def calls_over_time(
    timeline: Timeline, bucket_s: float, warmup_s: float, ended_s: float | None = None
) -> Plot | None:
    rates = call_rates(timeline, bucket_s, ended_s)
    if not rates:
        return None
    fig = Figure(figsize=(11, 3.4), layout="constrained")
    ax = fig.add_subplot()
    minutes = [t / 60.0 for t, _, _ in rates]
    ax.plot(minutes, [r[1] for r in rates], color=PALETTE[0], label="calls")
    ax.plot(minutes, [r[2] for r in rates], color=PALETTE[3],
            label="failed (no answer or 5xx after retries)")  # fmt: skip
    ax.set(xlabel="time from the run's start (min)", ylabel="calls per second",
           title="Calls planned, all endpoints")  # fmt: skip
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    shade_warmup(ax, warmup_s)
    caption = (
        f"Calls planned per second in each {bucket_s:g} s, and those that failed in the end. "
        "A deployment that falls behind shows as failed calls or as latency above, not as "
        "fewer calls when the run is open loop."
    )
    return Plot(to_svg(fig, "calls"), caption)


def _covered(start_s: float, bucket_s: float, ended_s: float | None) -> float:
    """How much of the bucket from ``start_s`` the run covered (at least a second, so a
    bucket the run barely entered does not show a burst)."""
    if ended_s is None:
        return bucket_s
    return min(bucket_s, max(1.0, ended_s - start_s))


def waits(rides: Sequence[Mapping[str, Any]]) -> Plot | None:
    sent = [r for r in rides if r.get("ride_id")]
    series = {
        "a driver accepted": [r["accepted_s"] - r["planned_s"] for r in sent
                              if r.get("accepted_s") is not None],
        "the driver arrived": [r["arrived_s"] - r["planned_s"] for r in sent
                               if r.get("arrived_s") is not None],
    }  # fmt: skip
    if not any(series.values()):
        return None
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.add_subplot()
    for i, (label, values) in enumerate(series.items()):
        xs, ys = ecdf(sorted(values), len(sent))
        ax.step(xs, ys, where="post", color=PALETTE[i], linewidth=1.8,
                label=f"{label}: {len(values):,} of {len(sent):,}")  # fmt: skip
    ax.set(xlabel="seconds from the planned request", ylabel="share of requests within",
           ylim=(0, 1), title="What the riders waited for")  # fmt: skip
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    caption = (
        "Share of the requests sent whose rider's app saw a driver accept, and the driver "
        "arrive, within x seconds of the time it planned to ask, as the app saw them on its "
        "ride stream. A curve stops below 1 by the share that never got there."
    )
    return Plot(to_svg(fig, "waits"), caption)


def client_stalls(loop: Sequence[Sequence[float]], bucket_s: float) -> Plot | None:
    if not loop:
        return None
    fig = Figure(figsize=(11, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([r[0] / 60.0 for r in loop], [r[1] for r in loop], color=PALETTE[4])
    ax.set(xlabel="time from the run's start (min)", ylabel="ms",
           title="The client's longest stall in each bucket")  # fmt: skip
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    caption = (
        f"How late a 50 ms sleep of the client's event loop woke, the worst in each "
        f"{bucket_s:g} s. A stall delays every app at once: latency that rises with it is "
        "the client's, not the deployment's."
    )
    return Plot(to_svg(fig, "stalls"), caption)
