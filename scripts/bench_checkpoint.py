"""Embedded shard restore: the whole log folded, against a checkpoint plus its tail.

Takes the data dir of a `dispatch simulate --data-dir DIR --shards 1` run (any log without
checkpoints, or with), folds shard 0's whole log into a matcher (a full replay), writes a
checkpoint of that state into the shard file through the recorder, a chunk a transaction
as the engine does, and times a restore from it. Also times what a checkpoint costs the
batches it rides on: the capture (once, at a batch boundary) and the encoding of each
chunk. Medians of ``--rounds``. Asserts nothing about time.

    python scripts/bench_checkpoint.py DIR [--rows 10000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dispatch.bootstrap import build_worker
from dispatch.checkpoints import encode_chunks
from dispatch.matching.state import capture
from dispatch.settings import Settings


def one_round(data_dir: Path, rows: int) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir, shards=1, checkpoint_every_events=0)
    full = build_worker(settings, 0, time.time)
    full.checkpoint_store = None
    started = time.process_time()
    events = full.restore()
    full_s = time.process_time() - started
    started = time.perf_counter()
    state = capture(full.matcher)
    capture_s = time.perf_counter() - started
    position = full.app.position()
    chunk_s = []
    chunks = encode_chunks(state, position, full.last_event_time, time.time(), rows)
    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        if chunk is None:
            break
        chunk_s.append(time.perf_counter() - started)
        full.app.recorder.insert_events([], checkpoint=chunk)
    full.app.close()
    worker = build_worker(settings, 0, time.time)
    started = time.process_time()
    tail = worker.restore()
    restore_s = time.process_time() - started
    assert worker.restored_from == position, "the checkpoint just written was not used"
    worker.app.close()
    return {
        "events": events,
        "drivers": len(state.drivers),
        "unended_rides": len(state.pending) + len(state.offers) + len(state.assigned),
        "full_replay_cpu_s": full_s,
        "checkpoint_restore_cpu_s": restore_s,
        "tail_events": tail,
        "capture_ms": capture_s * 1000,
        "chunks": len(chunk_s),
        "chunk_encode_ms_max": max(chunk_s) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--rows", type=int, default=10_000, help="rows per chunk")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (args.data_dir / "shard-0000.sqlite").exists():
        parser.error(f"{args.data_dir} has no shard-0000.sqlite (simulate with --shards 1)")
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:  # a copy: the checkpoint is written to it
            copy = Path(tmp) / "log"
            shutil.copytree(args.data_dir, copy)
            rounds.append(one_round(copy, args.rows))
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    median["cpu"] = platform.processor() or platform.machine()
    if args.json:
        print(json.dumps(median, indent=2))
        return
    for key, value in median.items():
        print(f"{key:>26}: {value:,.3f}" if isinstance(value, float) else f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
