"""Generate a city-scale road graph (no download): what the road benchmarks and a road
simulation of a big city run on when no extract of a real one is at hand.

    .venv/bin/python scripts/road_city.py --out city.roads.npz [--side 350] [--seed 1]

A seeded, perturbed grid of ``side`` x ``side`` junctions 100 m apart around Helsinki's
centre (350: a 35 km square, 122,500 nodes, about 420,000 directed edges), arterials every
tenth line at 60 km/h, streets at 30 km/h with 5 % of their blocks missing and every fifth
street one-way (alternating), only its largest strongly connected part kept, as the
OpenStreetMap reader keeps it. The file is a ``.roads.npz`` that ``--road-network`` and
``DISPATCH_ROAD_NETWORK`` take; the same side and seed give the same graph.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.roads.graph import RoadGraph

LAT0, LNG0 = 60.17, 24.94
SPACING_M = 100.0
M_PER_DEG = 111_320.0


def city(side: int, seed: int) -> RoadGraph:
    rng = np.random.default_rng(seed)
    n = side * side
    row, col = np.divmod(np.arange(n), side)
    x = col * SPACING_M + rng.uniform(-25, 25, n)
    y = row * SPACING_M + rng.uniform(-25, 25, n)
    tails, heads, speeds = [], [], []
    for line in range(side):
        for a, b in (
            (line * side + np.arange(side - 1), line * side + np.arange(1, side)),  # a row
            (np.arange(side - 1) * side + line, np.arange(1, side) * side + line),  # a column
        ):
            arterial = line % 10 == 0
            keep = np.ones(len(a), bool) if arterial else rng.random(len(a)) > 0.05
            a, b = a[keep], b[keep]
            kmh = (60.0 if arterial else 30.0) * rng.uniform(0.85, 1.15, len(a))
            if not arterial and line % 5 == 2:  # one-way, alternating street by street
                a, b = (b, a) if (line // 5) % 2 else (a, b)
                tails.append(a)
                heads.append(b)
                speeds.append(kmh)
            else:
                tails += [a, b]
                heads += [b, a]
                speeds += [kmh, kmh]
    tail, head, kmh = np.concatenate(tails), np.concatenate(heads), np.concatenate(speeds)
    length = np.hypot(x[tail] - x[head], y[tail] - y[head])
    lat = LAT0 + y / M_PER_DEG
    lng = LNG0 + x / (M_PER_DEG * math.cos(math.radians(LAT0)))
    matrix = csr_matrix((np.ones(len(tail)), (tail, head)), shape=(n, n))
    _, label = connected_components(matrix, directed=True, connection="strong")
    main = label == np.bincount(label).argmax()
    renumber = np.cumsum(main) - 1
    inside = main[tail] & main[head]
    return RoadGraph(
        source=f"generated: scripts/road_city.py --side {side} --seed {seed}",
        lat=lat[main], lng=lng[main],
        tail=renumber[tail[inside]].astype(np.int32), head=renumber[head[inside]].astype(np.int32),
        length_m=length[inside], seconds=(length / (kmh / 3.6))[inside],
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the .roads.npz to write")
    parser.add_argument("--side", type=int, default=350, help="junctions per side (>= 2)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.side < 2:
        parser.error(f"--side must be at least 2, not {args.side}")
    if not args.out.name.endswith(".roads.npz"):
        parser.error(f"--out must name a .roads.npz file, not {args.out}")
    if not args.out.parent.is_dir():
        parser.error(f"--out: no folder {args.out.parent}")
    graph = city(args.side, args.seed)
    graph.save(args.out)
    print(f"{args.out}: {graph.nodes:,} nodes, {graph.edges:,} edges")


if __name__ == "__main__":
    main()
