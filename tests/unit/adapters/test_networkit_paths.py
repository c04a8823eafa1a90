"""networkit's adapter reuses one route search per thread, remade before networkit's own
fault in reuse: routes asked one after another, and from several threads at once, are each
the fastest path."""

from __future__ import annotations

import itertools
import random
import threading

import networkit as nk
import pytest
from roads_data import helsinki_graph

from dispatch.adapters.networkit import paths as networkit_paths
from dispatch.adapters.networkit.paths import NetworkitPaths
from dispatch.roads.graph import RoadGraph
from dispatch.roads.paths import ScipyPaths


def _time_along(graph: RoadGraph, path: list[int]) -> float:
    """The time of a path along its fastest edges; fails unless each step is an edge."""
    fastest: dict[tuple[int, int], float] = {}
    for u, v, s in zip(graph.tail.tolist(), graph.head.tolist(), graph.seconds.tolist(),
                       strict=True):  # fmt: skip
        fastest[u, v] = min(s, fastest.get((u, v), float("inf")))
    assert all((u, v) in fastest for u, v in itertools.pairwise(path))
    return sum(fastest[u, v] for u, v in itertools.pairwise(path))


def _pairs(nodes: int, count: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [tuple(rng.sample(range(nodes), 2)) for _ in range(count)]  # type: ignore[misc]


def test_routes_asked_from_two_threads_at_once_are_each_the_fastest() -> None:
    graph = helsinki_graph()
    paths = NetworkitPaths(graph)
    pairs = _pairs(graph.nodes, 12, seed=5)
    reference = ScipyPaths(graph)  # checked against a plain Dijkstra by the port's contract
    expected = {(s, t): _time_along(graph, reference.path(s, t).tolist()) for s, t in pairs}
    got: dict[int, list[tuple[int, int, list[int]]]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def ask(worker: int) -> None:
        start.wait()
        for _ in range(20):  # the same pairs over and over, interleaved with the other
            for source, target in pairs:
                got[worker].append((source, target, paths.path(source, target).tolist()))

    threads = [threading.Thread(target=ask, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    for answers in got.values():
        assert len(answers) == 20 * len(pairs)
        for source, target, path in answers:
            assert path[0] == source and path[-1] == target
            assert _time_along(graph, path) == pytest.approx(
                expected[source, target], rel=1e-9, abs=1e-6
            )


def _assert_fastest(graph: RoadGraph, paths: NetworkitPaths, pairs: list[tuple[int, int]]) -> None:
    reference = ScipyPaths(graph)
    for source, target in pairs:
        path = paths.path(source, target).tolist()
        assert path and path[0] == source and path[-1] == target
        want = _time_along(graph, reference.path(source, target).tolist())
        assert _time_along(graph, path) == pytest.approx(want, rel=1e-9, abs=1e-6)


def test_four_hundred_routes_in_a_row_are_each_the_fastest() -> None:
    graph = helsinki_graph()
    _assert_fastest(graph, NetworkitPaths(graph), _pairs(graph.nodes, 400, seed=9))


def test_a_reused_search_that_says_no_path_is_checked_by_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Never remade: its 128th and 256th runs say "no path" (below); the fresh search
    # that checks a "no path" finds the route.
    monkeypatch.setattr(networkit_paths, "ROUTE_SEARCH_REUSES", 10_000)
    graph = helsinki_graph()
    _assert_fastest(graph, NetworkitPaths(graph), _pairs(graph.nodes, 300, seed=9))


def test_networkit_reused_bidirectional_search_fails_at_its_128th_run() -> None:
    """Why the adapter remakes its route search: the fault in networkit 11.3. If this test
    fails, networkit no longer has it and ROUTE_SEARCH_REUSES can go."""
    graph = helsinki_graph()
    forward = nk.Graph(graph.nodes, weighted=True, directed=True)
    forward.addEdges((graph.seconds, (graph.tail.astype("uint64"), graph.head.astype("uint64"))))
    search = nk.distance.BidirectionalDijkstra(forward, 0, 1, True)
    failed = []
    for run, (source, target) in enumerate(_pairs(graph.nodes, 300, seed=5), start=1):
        search.setSource(source)
        search.setTarget(target)
        search.run()
        if search.getDistance() > 1e300:
            failed.append(run)
    assert failed == [128, 256]
