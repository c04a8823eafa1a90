"""What writing checkpoints costs the batches: batch times with checkpoints on and off.

Runs the same embedded simulation twice (same seed, same demand), once with checkpoints
every ``--every`` events and once with none, and times every batch the shard worker
decides and saves (``ShardWorker.process``, its commit included). The two runs decide the
same batches (same seed), so batch ``i`` of one is compared with batch ``i`` of the other:
for the batches that carried a chunk, the time added; and the time a capture took at the
end of a batch. Percentiles in milliseconds. Asserts nothing.

    python scripts/bench_checkpoint_batches.py --drivers 20000 --minutes 3 --every 20000
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from dispatch.settings import Settings
from dispatch.shard.worker import Batch, ShardWorker
from dispatch.simulator.embedded import run_embedded
from dispatch.simulator.runner import THROUGHPUT_SCENARIO, SimConfig


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"batches": 0}
    ordered = sorted(values)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "batches": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1],
    }


def timed_run(args: argparse.Namespace, every: int) -> dict[str, Any]:
    batches: list[tuple[float, bool]] = []  # (ms, carried a chunk), in order
    after: list[float] = []  # committed(): listeners, and the next chunk encoded
    captures: list[float] = []
    process, committed = ShardWorker.process, ShardWorker.committed

    def timed_process(self: ShardWorker, inbound: Any) -> Batch:
        started = time.perf_counter()
        batch = process(self, inbound)
        ms = (time.perf_counter() - started) * 1000
        batches.append((ms, batch.checkpoint is not None))
        return batch

    def timed_committed(self: ShardWorker, batch: Batch) -> None:
        writing = self.checkpoints is not None and self.checkpoints.in_progress
        started = time.perf_counter()
        committed(self, batch)
        ms = (time.perf_counter() - started) * 1000
        if self.checkpoints is not None and not writing and self.checkpoints.in_progress:
            captures.append(ms)  # captured, and its first chunk encoded
        else:
            after.append(ms)

    ShardWorker.process = timed_process  # type: ignore[method-assign]
    ShardWorker.committed = timed_committed  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                data_dir=Path(tmp), shards=1, checkpoint_every_events=every,
                checkpoint_chunk_rows=args.rows,
            )  # fmt: skip
            config = SimConfig(
                drivers=args.drivers,
                minutes=args.minutes,
                seed=args.seed,
                demand_per_min=args.drivers * 0.075,
                **THROUGHPUT_SCENARIO,
            )
            report = run_embedded(config, settings)
    finally:
        ShardWorker.process, ShardWorker.committed = process, committed  # type: ignore[method-assign]
    return {"events": report.events, "batches": batches, "after_ms": after, "capture_ms": captures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, default=20_000)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--every", type=int, default=20_000, help="events between checkpoints")
    parser.add_argument("--rows", type=int, default=10_000, help="rows per chunk")
    args = parser.parse_args()
    if args.every < 1:
        parser.error("--every must be at least 1")
    off, on = timed_run(args, 0), timed_run(args, args.every)
    if off["events"] != on["events"] or len(off["batches"]) != len(on["batches"]):
        print("warning: the two runs did not decide the same batches; pairs are approximate")
    added = [
        on_ms - off_ms
        for (off_ms, _), (on_ms, chunk) in zip(off["batches"], on["batches"], strict=False)
        if chunk
    ]
    result = {
        "cpu": platform.processor() or platform.machine(),
        "events": on["events"],
        "batches_without_checkpoints": percentiles([ms for ms, _ in off["batches"]]),
        "batches_with_checkpoints": percentiles([ms for ms, _ in on["batches"]]),
        "chunks_written": len(added),
        "time_added_to_a_batch_by_its_chunk": percentiles(added),
        "after_commit_without": percentiles(off["after_ms"]),
        "after_commit_with (next chunk encoded)": percentiles(on["after_ms"]),
        "checkpoints_captured": len(on["capture_ms"]),
        "capture_and_first_chunk": percentiles(on["capture_ms"]),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
