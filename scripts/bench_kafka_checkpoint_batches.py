"""Batch latency on Kafka while a shard checkpoint is being written, beside batches with none.

    .venv/bin/python scripts/bench_kafka_checkpoint_batches.py [--drivers 20000]
        [--riders 30000] [--runs 3] [--seconds 200] [--warmup 10] [--rate 20]
        [--every 50000] [--rows 10000] [--no-calibrate] [--json]

Needs the local broker (scripts/kafka-local.sh start). ``--runs`` times, on fresh topics:
one shard's live state is written with the real shard application on the Kafka store
(``--drivers`` drivers registered and online, ``--riders`` riders, every registration's
command record within the idempotency window: about 2.4 live aggregates a user); a worker
process runs ``KafkaWorker`` as ``dispatch worker`` does (wall clock, checkpoints every
``--every`` events, ``--rows`` rows a chunk) and takes the shard (a full replay: there is
no checkpoint yet, so the first one begins at once), while this process drives a steady
load for ``--seconds``: every driver pings every 4 s on its own phase, riders request ``--rate``
rides a second at uniform pickups, and each offered driver accepts 1-3 s later, arrives
5 s after, starts the trip 1 s after that and completes it 10 s later.

The worker times every batch (``KafkaBatch.run``: decide and save, the chunk sent in the
batch's transaction, commit, then what follows the commit, where the next chunk is encoded
and its aggregates' snapshots taken) and notes whether a checkpoint was in progress: the
batch carried a chunk, or began a checkpoint (the capture and the first chunk). Batches of
the first ``--warmup`` seconds are left out. Reported per run: batch p50 / p99 (ms) with a
checkpoint in progress and with none, side by side, with their counts, batches a second
and mean commands, pings and events a batch; the batches that began a checkpoint on their
own; when each checkpoint began and how long it took to write; then the median of each
figure over the runs. With the defaults (the settings' interval of 50,000 events) the
checkpoint begun at the takeover is written during the first part of the load, the next
begins under load near its end, and most batches in between have none. Printed first: the
CPU model, the load average and ``scripts/bench_index.py`` queries/s (calibration).
Progress and each run's figures go to stderr, the result to stdout (a table, or JSON).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmachine import calibrate, cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The worker's group session: its first takeover replays the whole log inside the
# assignment callback, which blocks heartbeats (nothing timed here depends on it).
PATIENT: dict[str, Any] = {"session_timeout_ms": 60_000, "heartbeat_interval_ms": 3_000,
           "max_poll_interval_ms": 600_000}  # fmt: skip
WORKER_ONLY = frozenset({"serve", "prefix", "dir", "member", "json"})  # not the run's config
MEDIANS = ("batches", "batches_per_s", "p50_ms", "p99_ms", "max_ms", "mean_events",
           "decided_p50_ms", "committed_p50_ms")  # fmt: skip
PING_EVERY_S = 4.0
PHASES = 40  # a fortieth of the drivers pings every tenth of a second


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the live state ------------------------------------------------------------------------
def build_state(bootstrap: str, prefix: str, drivers: int, riders: int) -> dict[str, Any]:
    """Register the city with the shard application itself (no worker): one events record
    per thousand commands. Returns the ids (as text) and the events written."""
    from dispatch.adapters.kafka.topics import create_topics
    from dispatch.bootstrap import build_application
    from dispatch.domain.ids import new_id
    from dispatch.settings import Settings
    from schemas import commands as c

    create_topics(bootstrap, prefix, 1)
    app = build_application(Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix), 0)
    driver_ids = [new_id(0) for _ in range(drivers)]
    rider_ids = [new_id(0) for _ in range(riders)]
    commands: list[c.Command] = []
    for i, d in enumerate(driver_ids):
        commands += [c.RegisterDriver(driver_id=d, name=f"d{i}"), c.GoOnline(driver_id=d)]
    commands += [c.RegisterRider(rider_id=r, name=f"r{i}") for i, r in enumerate(rider_ids)]
    events = 0
    try:
        for i, command in enumerate(commands, 1):
            at = datetime.now(UTC)
            env = c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=at, command=command)
            events += len(app.handle(env, at))
            if i % 1_000 == 0 or i == len(commands):
                app.commit()
    finally:
        app.close()
    return {
        "drivers": [str(d) for d in driver_ids],
        "riders": [str(r) for r in rider_ids],
        "events": events,
    }


# -- the worker process ----------------------------------------------------------------------
def serve(args: argparse.Namespace) -> int:
    """Run the shard worker until ``<dir>/stop`` appears; write every batch's timing."""
    import logging

    from dispatch.adapters.kafka.batch import Ended, KafkaBatch, Offsets
    from dispatch.bootstrap import build_kafka_worker
    from dispatch.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    folder = Path(args.dir)
    settings = Settings(
        kafka_bootstrap=args.bootstrap, topic_prefix=args.prefix, shards=1,
        checkpoint_every_events=args.every, checkpoint_chunk_rows=args.rows,
    )  # fmt: skip
    batches: list[dict[str, Any]] = []
    spans: list[dict[str, float]] = []  # each checkpoint begun: when, and when completed
    original = KafkaBatch.run

    def timed(self: KafkaBatch, inbound: Any, offsets: Offsets) -> Ended:
        writer = self.host.worker.checkpoints
        before = writer is not None and writer.in_progress
        written = writer.written if writer is not None else 0
        at, started = time.time(), time.perf_counter()
        ended = original(self, inbound, offsets)
        ms = (time.perf_counter() - started) * 1000
        after = writer is not None and writer.in_progress
        began = after and (not before or (writer is not None and writer.written > written))
        if writer is not None and writer.written > written and spans:
            spans[-1]["completed"] = at + ms / 1000
        if began:
            spans.append({"began": at})
        report = ended.report
        batches.append({
            "at": at, "ms": ms, "state": ended.state, "carried": before, "began": began,
            "decided_ms": ended.decided_s * 1000, "committed_ms": ended.committed_s * 1000,
            "commands": report.commands if report else 0,
            "pings": report.pings if report else 0,
            "events": report.events if report else 0,
        })  # fmt: skip
        return ended

    KafkaBatch.run = timed  # type: ignore[method-assign]
    worker = build_kafka_worker(settings, member=args.member, **PATIENT)
    try:
        started = time.perf_counter()
        while 0 not in worker.shards:
            worker.run_once()
        shard = worker.shards[0].worker
        opened = {
            "restore_s": round(time.perf_counter() - started, 2),
            "restored_from": shard.restored_from,
            "live_aggregates": len(shard.live) if shard.live is not None else None,
        }
        (folder / "ready").write_text(json.dumps(opened))
        while not (folder / "stop").exists():
            worker.run_once()
        writer = worker.shards[0].worker.checkpoints if 0 in worker.shards else None
        opened["checkpoints_completed"] = writer.written if writer is not None else None
    finally:
        worker.close()
    found = {"opened": opened, "batches": batches, "checkpoints": spans}
    (folder / "batches.json").write_text(json.dumps(found))
    return 0


# -- the load ------------------------------------------------------------------------------
class Load:
    """Pings, ride requests, and each offer accepted and driven to its end."""

    def __init__(self, bootstrap: str, prefix: str, state: dict[str, Any], rate: float) -> None:
        from dispatch.adapters.kafka.transport import KafkaTransport
        from dispatch.simulator.city import City

        self.bootstrap, self.prefix, self.rate = bootstrap, prefix, rate
        self.bus = KafkaTransport(bootstrap, prefix)
        rng = random.Random(11)
        self.rng, self.city = rng, City()
        self.drivers = [uuid.UUID(d) for d in state["drivers"]]
        self.positions = {d: self.city.uniform(rng) for d in self.drivers}
        self.free_riders = [uuid.UUID(r) for r in state["riders"]]
        self.rider_of: dict[uuid.UUID, uuid.UUID] = {}
        self.offers: list[tuple[uuid.UUID, uuid.UUID]] = []  # (ride, driver), from the reader
        self.lock = threading.Lock()
        self.accepted: set[uuid.UUID] = set()
        self.due: list[tuple[float, int, str, uuid.UUID, uuid.UUID]] = []
        self.sent = {"requests": 0, "commands": 0, "pings": 0, "offers_seen": 0, "completed": 0}
        self.stop = threading.Event()

    def read_offers(self) -> None:
        """Follow the events partition (read_committed) for offers."""
        import orjson

        from dispatch.adapters.kafka.eventstore.codec import decode_events
        from dispatch.adapters.kafka.follower import Follower
        from dispatch.adapters.kafka.topics import Topics

        follower = Follower(self.bootstrap, Topics(self.prefix).events, [0], name="offers")
        follower.seek_to_end()
        try:
            while not self.stop.is_set():
                for records in follower.poll(timeout_ms=100).values():
                    for record in records:
                        for e in decode_events(record.value, record.headers):
                            if e.topic == "dispatch.Ride.Offered":
                                driver = orjson.loads(e.state)["driver_id"]
                                with self.lock:
                                    self.offers.append(
                                        (uuid.UUID(e.originator_key), uuid.UUID(driver))
                                    )
        finally:
            follower.close()

    def command(self, command: Any) -> None:
        from schemas import commands as c

        env = c.CommandEnvelope(
            command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), command=command
        )
        self.bus.send_command(env)
        self.sent["commands"] += 1

    def run(self, seconds: float) -> None:
        from dispatch.domain.ids import new_id
        from dispatch.messages import Ping
        from schemas import commands as c
        from schemas.common import LatLng

        reader = threading.Thread(target=self.read_offers, daemon=True)
        reader.start()
        started = time.monotonic()
        next_request = next_ping = started
        phase, seq = 0, 0
        steps = {"accept": ("arrive", 5.0), "arrive": ("start", 1.0),
                 "start": ("complete", 10.0), "complete": (None, 0.0)}  # fmt: skip
        kinds = {"accept": c.AcceptOffer, "arrive": c.MarkArrived, "start": c.StartTrip,
                 "complete": c.CompleteTrip}  # fmt: skip
        while (now := time.monotonic()) < started + seconds:
            if now >= next_ping:
                wall = time.time()
                group = self.drivers[phase::PHASES]
                self.bus.send_pings([Ping(d, *self.positions[d], wall) for d in group])
                self.sent["pings"] += len(group)
                phase, next_ping = (phase + 1) % PHASES, next_ping + PING_EVERY_S / PHASES
            while now >= next_request and self.free_riders:
                rider = self.free_riders.pop(self.rng.randrange(len(self.free_riders)))
                ride = new_id(0)
                lat, lng = self.city.uniform(self.rng)
                pickup = LatLng(lat=lat, lng=lng)
                dropoff = LatLng(lat=lat + 0.01, lng=lng)
                self.rider_of[ride] = rider
                self.command(c.RequestRide(ride_id=ride, rider_id=rider, pickup=pickup,
                                           dropoff=dropoff))  # fmt: skip
                self.sent["requests"] += 1
                next_request += 1.0 / self.rate
            with self.lock:
                offers, self.offers = self.offers, []
            for ride, driver in offers:
                self.sent["offers_seen"] += 1
                # A ride offered again was answered already; one of an earlier run is not ours.
                if ride in self.rider_of and ride not in self.accepted:
                    self.accepted.add(ride)
                    seq += 1
                    at = now + self.rng.uniform(1.0, 3.0)
                    heapq.heappush(self.due, (at, seq, "accept", ride, driver))
            while self.due and self.due[0][0] <= now:
                _, _, step, ride, driver = heapq.heappop(self.due)
                self.command(kinds[step](ride_id=ride, driver_id=driver))
                following, after = steps[step]
                if following is not None:
                    seq += 1
                    heapq.heappush(self.due, (now + after, seq, following, ride, driver))
                else:
                    self.sent["completed"] += 1
                    self.free_riders.append(self.rider_of.pop(ride))
            self.bus.flush()
            time.sleep(0.005)
        self.stop.set()
        reader.join(timeout=10)

    def close(self) -> None:
        self.bus.close()


# -- one run -------------------------------------------------------------------------------
def summary(batches: list[dict[str, Any]], seconds: float | None = None) -> dict[str, Any]:
    if not batches:
        return {"batches": 0}
    ordered = sorted(b["ms"] for b in batches)
    return {
        "batches": len(batches),
        "batches_per_s": round(len(batches) / seconds, 1) if seconds else None,
        "p50_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(percentile(ordered, 0.99), 1),
        "max_ms": round(ordered[-1], 1),
        "mean_commands": round(statistics.fmean(b["commands"] for b in batches), 1),
        "mean_pings": round(statistics.fmean(b["pings"] for b in batches), 1),
        "mean_events": round(statistics.fmean(b["events"] for b in batches), 1),
        "decided_p50_ms": round(statistics.median(b["decided_ms"] for b in batches), 1),
        "committed_p50_ms": round(statistics.median(b["committed_ms"] for b in batches), 1),
    }


def one_run(args: argparse.Namespace, prefix: str, state: dict[str, Any], i: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        folder = Path(tmp)
        command = [
            sys.executable, __file__, "--serve", "--bootstrap", args.bootstrap,
            "--prefix", prefix, "--every", str(args.every), "--rows", str(args.rows),
            "--dir", tmp, "--member", f"bench-{i}",
        ]  # fmt: skip
        load_before = os.getloadavg()[0]
        with (folder / "worker.log").open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.monotonic() + 600
            while not (folder / "ready").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "worker.log").read_text()[-3000:]
                    raise RuntimeError(f"the worker did not take the shard:\n{log}")
                time.sleep(0.2)
            load = Load(args.bootstrap, prefix, state, args.rate)
            started = time.time()
            try:
                load.run(args.seconds)
            finally:
                load.close()
            (folder / "stop").touch()
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:  # our own child, by its pid
                proc.kill()
                proc.wait()
        found = json.loads((folder / "batches.json").read_text())
        slow = [line for line in (folder / "worker.log").read_text().splitlines()
                if "slow batch" in line]  # fmt: skip
    counted = [
        b for b in found["batches"]
        if b["state"] == "committed" and b["at"] >= started + args.warmup
    ]  # fmt: skip
    during = [b for b in counted if b["carried"] or b["began"]]
    none = [b for b in counted if not (b["carried"] or b["began"])]
    # Wall time of each kind: from a batch's start to the next one's.
    seconds = {"during": 0.0, "none": 0.0}
    for batch, following in itertools.pairwise(counted):
        kind = "during" if batch["carried"] or batch["began"] else "none"
        seconds[kind] += following["at"] - batch["at"]
    checkpoints = [
        {"began_s": round(s["began"] - started, 1),
         "took_s": round(s["completed"] - s["began"], 1) if "completed" in s else None}
        for s in found["checkpoints"]
    ]  # fmt: skip
    return {
        "opened": found["opened"],
        "load_average_before": round(load_before, 2),
        "sent": load.sent,
        "not_committed": sum(b["state"] != "committed" for b in found["batches"]),
        "slow_batch_warnings": len(slow),
        "checkpoints": checkpoints,  # began (s after the load started), and how long it took
        "during_checkpoint": summary(during, seconds["during"]),
        "no_checkpoint": summary(none, seconds["none"]),
        "began_a_checkpoint": summary([b for b in counted if b["began"]]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--drivers", type=int, default=20_000)
    parser.add_argument("--riders", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=200.0)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds not counted")
    parser.add_argument("--rate", type=float, default=20.0, help="ride requests a second")
    parser.add_argument("--every", type=int, default=50_000, help="events between checkpoints")
    parser.add_argument("--rows", type=int, default=10_000, help="rows a chunk")
    parser.add_argument("--no-calibrate", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep each run's topics")
    parser.add_argument("--json", action="store_true")
    # The worker process (started by this script).
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--member", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args)

    from dispatch.adapters.kafka.topics import delete_topics

    calibration = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "bench_index_queries_per_s": None if args.no_calibrate else round(calibrate()),
    }
    print(f"calibration: {json.dumps(calibration)}", file=sys.stderr, flush=True)
    runs = []
    for i in range(args.runs):  # each on a state of its own, written afresh: the same start
        prefix = f"bench-cp-{uuid.uuid4().hex[:6]}"
        started = time.perf_counter()
        try:
            state = build_state(args.bootstrap, prefix, args.drivers, args.riders)
            built = round(time.perf_counter() - started, 1)
            print(f"state: {state['events']:,} events written in {built} s", file=sys.stderr)
            result = one_run(args, prefix, state, i)
        finally:
            if not args.keep:
                delete_topics(args.bootstrap, prefix)
        runs.append({"state_events": state["events"], **result})
        print(f"run {i + 1}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)

    def median_of(part: str, key: str) -> float | None:
        """Over the runs that had batches of that kind (``runs_with`` says how many)."""
        values = [r[part][key] for r in runs if r[part].get(key) is not None]
        return round(statistics.median(values), 1) if values else None

    figures: dict[str, Any] = {
        "calibration": calibration,
        "config": {k: v for k, v in vars(args).items() if k not in WORKER_ONLY},
        "runs": runs,
        "medians": {
            part: {"runs_with": sum(bool(r[part]["batches"]) for r in runs)}
            | {key: median_of(part, key) for key in MEDIANS}
            for part in ("during_checkpoint", "no_checkpoint", "began_a_checkpoint")
        },
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print("medians over the runs:")
        for part, m in figures["medians"].items():
            print(f"  {part:20} {json.dumps(m)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
