"""What keeping the views costs a serving process, whole against changes only (issue #22).

Builds the views of N drivers (registered, then online: events folded as a serving process
folds them), keeps them whole in a SQLite view store, then changes a share of the drivers
(each goes offline and online again: two events) and keeps the changes, as the keeper does
after its first save (``projections/parts.py``). For each share: the time to encode the
changes and the time to write them to the store (on this thread: the work the keeper does
in a forked child and in the serving process respectively; the write also as this
thread's CPU time, without the waits for the disk), the bytes written, and the
same for a whole keeping of the same views (what every keeping cost before), in the same
run. Each round keeps the views whole, then each share's changes on that. Medians over
``--runs``.

    .venv/bin/python scripts/bench_view_saves.py --drivers 50000 --runs 5 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmachine import calibrate, cpu_model

from dispatch.adapters.sqlite.viewstore import SqliteViewStore
from dispatch.domain.driver import Driver
from dispatch.log import LogEvent
from projections.store import encode, encode_changes
from projections.views import ViewSet, default_projections


def views_of(drivers: int) -> tuple[ViewSet, list[str], int]:
    views = ViewSet(default_projections())
    ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(drivers)]
    position = 0
    page: list[LogEvent] = []
    for driver in ids:
        for version, topic, data in (
            (1, Driver.Created.TOPIC, {"name": f"driver {driver[-6:]}"}),
            (2, Driver.WentOnline.TOPIC, {}),
        ):
            position += 1
            page.append(LogEvent(0, position, driver, version, topic, 1_000.0 + position, data))
    views.apply_page(page)
    views.take_changed()
    return views, ids, position


def change(views: ViewSet, ids: list[str], share: float, position: int) -> int:
    """The first ``share`` of the drivers go offline and online again (versions are the
    positions: only their order matters here)."""
    page: list[LogEvent] = []
    for driver in ids[: int(len(ids) * share)]:
        for topic in (Driver.WentOffline.TOPIC, Driver.WentOnline.TOPIC):
            position += 1
            page.append(LogEvent(0, position, driver, position, topic, 1_000.0 + position, {}))
    views.apply_page(page)
    return position


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shares", default="0,0.001,0.01,0.1,1")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.drivers < 1 or args.runs < 1:
        parser.error("--drivers and --runs must be at least 1")
    try:
        shares = [float(s) for s in args.shares.split(",")]
    except ValueError:
        parser.error(f"--shares must be numbers between 0 and 1, not {args.shares!r}")
    if not all(0 <= s <= 1 for s in shares):
        parser.error(f"--shares must be numbers between 0 and 1, not {args.shares!r}")
    views, ids, position = views_of(args.drivers)
    gc.collect()
    gc.freeze()  # as `dispatch serve` does once warm: no collection of the views mid-save
    projections, states = views.projections, views.states
    figures: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteViewStore(Path(tmp) / "views.sqlite")
        for _run in range(args.runs):
            gc.collect()
            started = time.perf_counter()
            whole = encode(projections, states, "embedded", uuid.uuid4().hex)
            encoded, cpu = time.perf_counter(), time.thread_time()
            store.save(whole)
            row = figures.setdefault("whole", {})
            row.setdefault("encode_ms", []).append(1e3 * (encoded - started))
            row.setdefault("write_ms", []).append(1e3 * (time.perf_counter() - encoded))
            row.setdefault("write_cpu_ms", []).append(1e3 * (time.thread_time() - cpu))
            row.setdefault("bytes", []).append(sum(map(len, whole.views.values())))
            base = whole.generation
            for share in shares:
                position = change(views, ids, share, position)
                changed = views.take_changed()
                gc.collect()
                started = time.perf_counter()
                changes = encode_changes(
                    projections, states, changed, "embedded", base, uuid.uuid4().hex
                )
                encoded, cpu = time.perf_counter(), time.thread_time()
                store.keep_changes(changes)
                row = figures.setdefault(f"changes {share:g}", {})
                row.setdefault("encode_ms", []).append(1e3 * (encoded - started))
                row.setdefault("write_ms", []).append(1e3 * (time.perf_counter() - encoded))
                row.setdefault("write_cpu_ms", []).append(1e3 * (time.thread_time() - cpu))
                row.setdefault("parts", []).append(sum(len(p) for p in changes.parts.values()))
                row.setdefault("bytes", []).append(
                    sum(map(len, changes.views.values()))
                    + sum(map(len, changes.rests.values()))
                    + sum(len(b) for p in changes.parts.values() for b in p.values())
                )
                base = changes.generation
    out = {
        "cpu": cpu_model(),
        "bench_index_qps": round(calibrate()),
        "drivers": args.drivers,
        "runs": args.runs,
        "medians": {
            name: {k: round(statistics.median(v), 2) for k, v in row.items()}
            for name, row in figures.items()
        },
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{out['cpu']} ({out['bench_index_qps']:,} bench_index queries/s); "
            f"{args.drivers} drivers; medians of {args.runs} runs"
        )
        for name, row in out["medians"].items():
            print(f"  {name:>16}: " + ", ".join(f"{k} {v:g}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
