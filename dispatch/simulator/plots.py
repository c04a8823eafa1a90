"""The figures of the simulator's HTML report (``html_report``), as inline SVG.

Each figure function takes the runs' data pooled per strategy (requests made during the
warm-up already left out) and returns a ``Plot`` (its SVG and a one-line caption), or None
when there is nothing to draw. Only matplotlib's object API is used (``Figure``, rendered by
the non-interactive backends), never pyplot's global state, so drawing is thread-safe and
needs no display. Text is drawn as paths, so an SVG needs no font.
"""

from __future__ import annotations

import io
import math
import random
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import h3
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PolyCollection
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from dispatch.simulator.results import RideRecord, Sample

PALETTE = (  # matplotlib's tab10 less its grey, which the map keeps for thin cells
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)
ECDF_POINTS = 400  # an ECDF is drawn through at most this many of its quantiles
SCATTER_POINTS = 600  # per strategy: more are sampled down (the caption says so)
MIN_CELL_WAITS = 3  # a hexagon with fewer picked-up requests is drawn grey
MAX_CELLS = 300
MIN_MEAN_PER_CELL = 5.0
GREY = "#d0d0d0"
WARMUP_SHADE = "#e8e8e8"

Rides = Mapping[str, Sequence[RideRecord]]
Runs = Mapping[str, Sequence[Sequence[Sample]]]

_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_ID_REFS = re.compile(r'(id="|href="#|url\(#)([^")]+)')


@dataclass(frozen=True)
class Plot:
    svg: str  # an <svg> element: no XML prologue, no metadata, ids prefixed
    caption: str


def colours(strategies: Sequence[str]) -> dict[str, str]:
    """One colour per strategy, in the given order (the palette repeats past nine)."""
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(strategies)}


def to_svg(fig: Figure, prefix: str) -> str:
    """The figure as an ``<svg>`` element to inline in HTML. The prologue (with its DTD URL)
    and the RDF metadata go; ids get ``prefix`` so several SVGs can share one page."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    text = _METADATA.sub("", text[text.index("<svg") :])
    return _ID_REFS.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)


def wait_ecdf(rides: Rides, colour: Mapping[str, str]) -> Plot | None:
    """The share of requests picked up within x seconds, per strategy."""
    if not any(r.wait_s is not None for group in rides.values() for r in group):
        return None
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for strategy, group in rides.items():
        waits = sorted(w for r in group if (w := r.wait_s) is not None)
        xs, ys = ecdf(waits, len(group))
        label = f"{strategy}: {len(waits):,} of {len(group):,} picked up"
        ax.step(xs, ys, where="post", color=colour[strategy], label=label, linewidth=1.8)
    ax.set(
        title="Wait for a driver: request to driver at the pickup",
        xlabel="wait (s)",
        ylabel="share of requests picked up within",
        ylim=(0, 1),
    )
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    caption = (
        "Share of requests (seeds pooled) whose driver reached the pickup within x seconds; "
        "a curve stops below 1 by the share never picked up (cancelled, expired or still "
        "in flight). Requests before the warm-up are left out."
    )
    return Plot(to_svg(fig, "wait"), caption)


def ecdf(values: Sequence[float], total: int) -> tuple[list[float], list[float]]:
    """Points of the step curve: x sorted values, y the share of ``total`` at or below x,
    through at most ``ECDF_POINTS`` of them (evenly spaced ranks, the last one kept)."""
    if not values:
        return [], []
    n = len(values)
    k = min(n, ECDF_POINTS)
    ranks = sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)})
    return [0.0] + [values[i] for i in ranks], [0.0] + [(i + 1) / total for i in ranks]


def pickup_scatter(rides: Rides, colour: Mapping[str, str]) -> Plot | None:
    """The matcher's pickup ETA against the realised one, a panel per strategy."""
    pairs = {s: _eta_pairs(group) for s, group in rides.items()}
    pairs = {s: p for s, p in pairs.items() if p}
    if not pairs:
        return None
    fig = Figure(figsize=(4.6 * min(len(pairs), 3), 4.4), layout="constrained")
    axes = list(fig.subplots(math.ceil(len(pairs) / 3), min(len(pairs), 3), squeeze=False).flat)
    extents = sorted(max(e, r) for p in pairs.values() for e, r in p)
    top = extents[min(len(extents) - 1, int(0.995 * len(extents)))] * 1.05
    outside = sum(x > top for x in extents)
    shown = total = 0
    for ax, (strategy, p) in zip(axes, pairs.items(), strict=False):
        sample = random.Random(0).sample(p, SCATTER_POINTS) if len(p) > SCATTER_POINTS else p
        shown, total = shown + len(sample), total + len(p)
        _eta_panel(ax, strategy, p, sample, colour[strategy], top)
    for ax in axes[len(pairs) :]:
        ax.set_axis_off()
    fig.suptitle("Pickup time: the matcher's estimate against the drive")
    note = f"; {shown:,} of {total:,} points shown, sampled at random" if shown < total else ""
    if outside:
        note += f"; the axes stop at {top:,.0f} s: {outside:,} requests beyond are not drawn"
        note += " (the panel titles' means include them)"
    caption = (
        "Each dot is one picked-up request (seeds pooled): estimated pickup ETA in the "
        "accepted offer against the realised time from acceptance to arrival; dots above "
        f"the dashed line took longer than estimated{note}. Requests before the warm-up "
        "are left out."
    )
    return Plot(to_svg(fig, "eta"), caption)


def _eta_pairs(rides: Sequence[RideRecord]) -> list[tuple[float, float]]:
    return [
        (r.eta_estimated_s, r.eta_realised_s)
        for r in rides
        if r.eta_estimated_s is not None and r.eta_realised_s is not None
    ]


def _eta_panel(
    ax: Axes,
    strategy: str,
    pairs: Sequence[tuple[float, float]],
    sample: Sequence[tuple[float, float]],
    colour: str,
    top: float,
) -> None:
    ax.scatter([e for e, _ in sample], [r for _, r in sample], s=6, color=colour, alpha=0.5)
    ax.plot([0, top], [0, top], color="0.3", linestyle="--", linewidth=1)
    est = statistics.fmean(e for e, _ in pairs)
    real = statistics.fmean(r for _, r in pairs)
    ax.set(xlim=(0, top), ylim=(0, top), aspect="equal")
    ax.set_title(f"{strategy}: mean estimated {est:.0f} s, realised {real:.0f} s", fontsize=10)
    ax.set(xlabel="estimated pickup ETA (s)", ylabel="realised: accepted to arrived (s)")
    ax.grid(alpha=0.3)


def _per_minute(field: str) -> Callable[[Sample, Sample | None], float]:
    """A cumulative count of a Sample as a rate per minute over the interval before it."""

    def rate(s: Sample, prev: Sample | None) -> float:
        before = getattr(prev, field) if prev else 0
        dt = s.t_s - (prev.t_s if prev else 0.0)
        return 60.0 * (getattr(s, field) - before) / dt if dt > 0 else 0.0

    return rate


Style = Literal["-", ":"]
SERIES: dict[str, tuple[tuple[str, Style, Callable[[Sample, Sample | None], float]], ...]] = {
    "Served (driver accepted)": (("served", "-", _per_minute("served")),),
    "Expired and cancelled": (
        ("expired", "-", _per_minute("expired")),
        ("cancelled", ":", _per_minute("cancelled")),
    ),
    "Driver utilisation": (("busy share", "-", lambda s, _: 100.0 * s.utilisation),),
    "Supply and demand": (
        ("idle drivers", "-", lambda s, _: float(s.idle_drivers)),
        ("waiting requests", ":", lambda s, _: float(s.waiting)),
    ),
}
UNITS = ("requests per min", "requests per min", "busy drivers (%)", "drivers or requests")


def timeseries(runs: Runs, colour: Mapping[str, str], warmup_s: float) -> Plot | None:
    """Four panels over simulated time, each line the mean over a strategy's seeds."""
    if not any(run for group in runs.values() for run in group):
        return None
    fig = Figure(figsize=(11, 7), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).flat
    for ax, (title, series), unit in zip(axes, SERIES.items(), UNITS, strict=True):
        for strategy, group in runs.items():
            for _, style, value in series:
                xs, ys = _mean_over_seeds(group, value)
                ax.plot(xs, ys, color=colour[strategy], linestyle=style, linewidth=1.5)
        shade_warmup(ax, warmup_s)
        ax.set(title=title, xlabel="simulated time (min)", ylabel=unit)
        ax.tick_params(labelbottom=True)  # sharex hides the top row's otherwise
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            styles = [Line2D([], [], color="0.2", linestyle=st) for _, st, _ in series]
            ax.legend(styles, [name for name, _, _ in series], loc="best", fontsize=8)
    handles = [Line2D([], [], color=colour[s], linewidth=3) for s in runs]
    fig.legend(handles, list(runs), loc="outside lower center", ncols=min(len(runs), 6))
    fig.suptitle("The market over time (mean over seeds)")
    caption = (
        "The market sampled over simulated time, each line the mean over a strategy's "
        "seeds at each sample; rates are the counts between two samples, per minute. The "
        "shaded warm-up is drawn here, but its requests are left out of every other figure."
    )
    return Plot(to_svg(fig, "time"), caption)


def _mean_over_seeds(
    runs: Sequence[Sequence[Sample]], value: Callable[[Sample, Sample | None], float]
) -> tuple[list[float], list[float]]:
    at: dict[float, list[float]] = defaultdict(list)
    for run in runs:
        prev: Sample | None = None
        for s in sorted(run, key=lambda s: s.t_s):
            at[s.t_s].append(value(s, prev))
            prev = s
    ts = sorted(at)
    return [t / 60.0 for t in ts], [statistics.fmean(at[t]) for t in ts]


def shade_warmup(ax: Axes, warmup_s: float) -> None:
    """The warm-up shaded on a panel whose x axis is minutes, and labelled."""
    if warmup_s <= 0:
        return
    ax.axvspan(0, warmup_s / 60.0, color=WARMUP_SHADE, zorder=0)
    ax.text(0.01, 0.97, "warm-up", transform=ax.transAxes, va="top", fontsize=8, color="0.35")


def hex_map(rides: Rides) -> Plot | None:
    """Mean wait per H3 cell of the pickup, a panel per strategy on one colour scale."""
    everyone = [r for group in rides.values() for r in group]
    if not any(r.wait_s is not None for r in everyone):
        return None
    res = _resolution(everyone, len(rides))
    cells = {s: _cell_waits(group, res) for s, group in rides.items() if group}
    reliable = [
        statistics.fmean(w) for c in cells.values() for w in c.values() if len(w) >= MIN_CELL_WAITS
    ]
    # Stepped colours: easier to read off a map, and the colour bar stays vector (a smooth
    # one is embedded as a PNG).
    steps = MaxNLocator(nbins=8).tick_values(0.0, max(reliable, default=0.0) or 1.0)
    norm = BoundaryNorm(steps, ncolors=colormaps["viridis"].N)
    ncols = min(len(cells), 2)
    fig = Figure(figsize=(5.4 * ncols + 1, 5.2 * math.ceil(len(cells) / ncols)))
    fig.set_layout_engine("constrained")
    axes = list(fig.subplots(math.ceil(len(cells) / ncols), ncols, squeeze=False).flat)
    polys = {c: _boundary(c) for waits in cells.values() for c in waits}
    lngs = [x for p in polys.values() for x, _ in p]
    lats = [y for p in polys.values() for _, y in p]
    for ax, (strategy, waits) in zip(axes, cells.items(), strict=False):
        _hex_panel(ax, strategy, waits, polys, norm)
        ax.set(xlim=(min(lngs), max(lngs)), ylim=(min(lats), max(lats)))
        ax.set_aspect(1.0 / math.cos(math.radians((min(lats) + max(lats)) / 2)))
    for ax in axes[len(cells) :]:
        ax.set_axis_off()
    mappable = ScalarMappable(norm=norm, cmap=colormaps["viridis"])
    fig.colorbar(mappable, ax=axes, label="mean wait (s)", shrink=0.8)
    fig.suptitle("Mean wait by pickup area")
    edge = h3.average_hexagon_edge_length(res, unit="km")
    caption = (
        f"Mean wait of the picked-up requests per H3 cell of the pickup (resolution {res}, "
        f"edge about {edge:.2f} km), seeds pooled; grey cells had fewer than "
        f"{MIN_CELL_WAITS} picked-up requests, cells with no request are not drawn. No "
        "base map (the report works offline). Requests before the warm-up are left out."
    )
    return Plot(to_svg(fig, "map"), caption)


def _resolution(rides: Sequence[RideRecord], strategies: int) -> int:
    """The finest H3 resolution (9 down to 6) with at most ``MAX_CELLS`` cells that still has
    about ``MIN_MEAN_PER_CELL`` requests of a strategy in a cell on average."""
    for res in (9, 8, 7):
        n = len({h3.latlng_to_cell(r.pickup_lat, r.pickup_lng, res) for r in rides})
        if n <= MAX_CELLS and len(rides) / (strategies * n) >= MIN_MEAN_PER_CELL:
            return res
    return 6


def _cell_waits(rides: Sequence[RideRecord], res: int) -> dict[str, list[float]]:
    """Each cell with a request, with the waits of its picked-up requests (maybe none)."""
    waits: dict[str, list[float]] = defaultdict(list)
    for r in rides:
        cell = h3.latlng_to_cell(r.pickup_lat, r.pickup_lng, res)
        waits[cell].extend([] if r.wait_s is None else [r.wait_s])
    return waits


def _boundary(cell: str) -> list[tuple[float, float]]:
    """The cell's corners as (lng, lat): x, y on the map."""
    return [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]


def _hex_panel(
    ax: Axes,
    strategy: str,
    waits: Mapping[str, Sequence[float]],
    polys: Mapping[str, list[tuple[float, float]]],
    norm: BoundaryNorm,
) -> None:
    cmap = colormaps["viridis"]
    faces = [
        cmap(norm(statistics.fmean(w))) if len(w) >= MIN_CELL_WAITS else GREY
        for w in waits.values()
    ]
    shapes = [polys[cell] for cell in waits]
    ax.add_collection(PolyCollection(shapes, facecolors=faces, edgecolors="white", linewidths=0.3))
    coloured = sum(len(w) >= MIN_CELL_WAITS for w in waits.values())
    ax.set_title(
        f"{strategy}: {coloured} cells coloured, {len(waits) - coloured} grey", fontsize=10
    )
    ax.set(xlabel="longitude (°)", ylabel="latitude (°)")
    ax.tick_params(labelsize=8)
