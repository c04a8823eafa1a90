"""Benchmark the road-network ETA provider on a city-scale graph it builds itself.

    .venv/bin/python scripts/bench_road_eta.py [--side 350] [--queries 2000] [--rounds 3]
        [--seed 1] [--fleet 0] [--routers networkit,scipy] [--no-calibrate] [--json]

The graph: ``scripts/road_city.py``'s generated city (350: 122,464 nodes, 420,248 directed
edges). The provider is the engine's (``dispatch.roads.eta.RoadNetworkEta``), bounded by
the default 900 s pickup ETA, with each router compared (``--routers``): networkit's
multi-target Dijkstra (the engine's), scipy's bounded Dijkstra (the reference) and, when
``routingkit-cch`` is installed, its contraction hierarchy (``cch``: not a dependency),
taken in turn round by round on the same workload.

Timed, each the median over ``--rounds`` rounds: building the provider (k-d tree, the
router's graph); one pickup against 32 candidate drivers within 3 km, at random nodes or the 32
nearest of a fleet (``--fleet``: what the matcher asks) (one query: the issue asks p99
at most 1 ms); a batch window of 100 pickups x 32 candidates (at most 50 ms asked). The
machine (CPU model and ``scripts/bench_index.py`` queries/s) is printed beside the figures.
Nothing about time is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmachine import calibrate, cpu_model
from road_city import LAT0, M_PER_DEG, city

from dispatch.adapters.networkit.paths import NetworkitPaths
from dispatch.matching.eta import StraightLineEta
from dispatch.matching.geo import haversine_m
from dispatch.roads.eta import RoadNetworkEta
from dispatch.roads.graph import RoadGraph
from dispatch.roads.paths import ScipyPaths, ShortestPaths

CANDIDATES, RADIUS_M, MAX_ETA_S = 32, 3_000.0, 900.0


def workload(
    graph: RoadGraph, queries: int, seed: int, fleet: int
) -> list[tuple[tuple[float, float], list[tuple[float, float, float]]]]:
    """Pickups at random nodes, each with 32 candidate drivers: at random nodes within 3 km
    (``fleet`` 0), or the 32 nearest within 3 km of a fleet of ``fleet`` drivers at random
    nodes (what the matcher's index gives the router)."""
    rng = np.random.default_rng(seed + 1)
    xy = np.column_stack(
        (graph.lat * M_PER_DEG, graph.lng * M_PER_DEG * math.cos(math.radians(LAT0)))
    )
    tree = cKDTree(xy)
    drivers = rng.choice(graph.nodes, size=fleet, replace=False) if fleet else None
    fleet_tree = cKDTree(xy[drivers]) if drivers is not None else None
    out = []
    for node in rng.integers(0, graph.nodes, queries):
        if drivers is not None and fleet_tree is not None:
            dist, idx = fleet_tree.query(xy[node], k=CANDIDATES, distance_upper_bound=RADIUS_M)
            chosen = drivers[idx[np.isfinite(dist)]]
        else:
            near = tree.query_ball_point(xy[node], RADIUS_M)
            chosen = rng.choice(near, size=min(CANDIDATES, len(near)), replace=False)
        pickup = (float(graph.lat[node]), float(graph.lng[node]))
        sources = [(float(graph.lat[d]), float(graph.lng[d]),
                    haversine_m(graph.lat[d], graph.lng[d], *pickup)) for d in chosen]  # fmt: skip
        out.append((pickup, sources))
    return out


class CchPaths:
    """routingkit-cch's customizable contraction hierarchy (``pip install
    routingkit-cch``, not a dependency of the engine): its many-to-one query pins the
    candidates and sweeps once to the pickup. Measured to say why the engine does not use
    it; only ``times_to`` (the ETA query) is implemented. Times are whole milliseconds."""

    def __init__(self, graph: RoadGraph) -> None:
        import routingkit_cch as rk

        tail, head = graph.tail.tolist(), graph.head.tolist()
        order = rk.compute_order_inertial(
            graph.nodes, tail, head, graph.lat.tolist(), graph.lng.tolist()
        )
        self._cch = rk.CCH(order, tail, head, False)
        weights = np.rint(graph.seconds * 1000).astype(np.int64).tolist()
        self._metric = rk.CCHMetric(self._cch, weights)
        self._query = rk.CCHManyToOne(self._metric, [0])

    def times_to(
        self, target: int, sources: np.ndarray, bound_s: float, hint_s: float
    ) -> np.ndarray:
        self._query.repin_sources(sources.tolist())
        ms = self._query.distances_to(target)
        times = np.array([math.inf if m is None else m / 1000 for m in ms])
        times[times > bound_s] = math.inf
        return times

    def path(self, source: int, target: int) -> np.ndarray:
        raise NotImplementedError("the benchmark times ETAs only")


ROUTERS: dict[str, Callable[[RoadGraph], ShortestPaths]] = {
    "networkit": NetworkitPaths,
    "scipy": ScipyPaths,
    "cch": CchPaths,
}


def run(
    side: int, queries: int, rounds: int, seed: int, fleet: int, routers: list[str]
) -> dict[str, float | int]:
    """Every router on the same graph and workload, round by round in turn (so a slow
    moment of the machine touches them alike)."""
    graph = city(side, seed)
    if fleet > graph.nodes:
        raise SystemExit(f"--fleet {fleet}: the graph has only {graph.nodes} nodes")
    work = workload(graph, queries, seed, fleet)
    figures: dict[str, dict[str, list[float]]] = {
        r: {"build": [], "p50": [], "p99": [], "batch": []} for r in routers
    }
    unreachable: dict[str, int] = dict.fromkeys(routers, 0)
    for _ in range(rounds):
        for name in routers:
            got = figures[name]
            started = time.perf_counter()
            eta = RoadNetworkEta(graph, MAX_ETA_S, StraightLineEta(), paths=ROUTERS[name](graph))
            got["build"].append(time.perf_counter() - started)
            times = []
            for pickup, sources in work:
                t0 = time.perf_counter()
                answer = eta.etas_s(*pickup, sources)
                times.append(time.perf_counter() - t0)
                unreachable[name] += sum(1 for a in answer if math.isinf(a))
            times.sort()
            got["p50"].append(times[len(times) // 2] * 1e3)
            got["p99"].append(times[int(len(times) * 0.99)] * 1e3)
            t0 = time.perf_counter()
            for pickup, sources in work[:100]:
                eta.etas_s(*pickup, sources)
            got["batch"].append((time.perf_counter() - t0) * 1e3)
    out: dict[str, float | int] = {
        "nodes": graph.nodes, "edges": graph.edges, "fleet": fleet, "queries": queries,
        "rounds": rounds,
    }  # fmt: skip
    for name in routers:
        got = figures[name]
        out |= {
            f"{name}_build_s": statistics.median(got["build"]),
            f"{name}_one_to_32_p50_ms": statistics.median(got["p50"]),
            f"{name}_one_to_32_p99_ms": statistics.median(got["p99"]),
            f"{name}_batch_100x32_ms": statistics.median(got["batch"]),
            f"{name}_beyond_the_bound_share": unreachable[name] / (rounds * queries * CANDIDATES),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=350)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fleet", type=int, default=0,
                        help="candidates: the 32 nearest of this many drivers (0: random "
                        "within 3 km)")  # fmt: skip
    parser.add_argument("--routers", default="networkit,scipy",
                        help="comma-separated, from: " + ", ".join(ROUTERS))  # fmt: skip
    parser.add_argument("--no-calibrate", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.side < 2:
        parser.error(f"--side must be at least 2, not {args.side}")
    if args.queries < 100:  # the batch window is 100 of them
        parser.error(f"--queries must be at least 100 (the batch is 100), not {args.queries}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, not {args.rounds}")
    if not 0 <= args.fleet <= args.side * args.side:
        parser.error(f"--fleet must be 0 to --side squared, not {args.fleet}")
    routers = [r.strip() for r in args.routers.split(",") if r.strip()]
    unknown = [r for r in routers if r not in ROUTERS]
    if unknown or not routers:
        parser.error(f"--routers: choose from {', '.join(ROUTERS)}, not {args.routers!r}")
    if "cch" in routers and importlib.util.find_spec("routingkit_cch") is None:
        parser.error("--routers cch needs routingkit-cch: pip install routingkit-cch")
    result: dict[str, object] = {"cpu": cpu_model()}
    if not args.no_calibrate:
        result["bench_index_qps"] = calibrate()
    result |= run(args.side, args.queries, args.rounds, args.seed, args.fleet, routers)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>24}: {value:,.3f}" if isinstance(value, float) else f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
