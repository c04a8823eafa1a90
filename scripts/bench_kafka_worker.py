"""Benchmarks of a shard worker on the real broker (scripts/kafka-local.sh start first).

1. ping ingest into one worker: pre-produced pings, batched (1,000 per record) and one per
   record, timed from the worker's first poll until it has applied them all;
2. request-to-offer latency: ride requests produced at a fixed rate with available drivers
   pinging, from the moment a request is produced until its Ride.Offered event is committed
   and read back (read_committed).
(Restore is measured by scripts/bench_restore.py.)

Prints one line of figures per benchmark (or JSON with --json). Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from kafka import TopicPartition

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.config import new_consumer, new_producer
from dispatch.adapters.kafka.eventstore.codec import decode_events
from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.adapters.kafka.worker import KafkaWorker
from dispatch.bootstrap import build_kafka_worker
from dispatch.domain.ids import new_id
from dispatch.messages import Ping
from dispatch.settings import Settings
from dispatch.simulator.city import City
from schemas import commands as c
from schemas.common import LatLng


def settings_for(bootstrap: str, prefix: str) -> Settings:
    return Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, shards=1)


def register(bus: KafkaTransport, drivers: int, riders: int) -> tuple[list, list]:
    now = datetime.now(UTC)
    ds = [new_id(0) for _ in range(drivers)]
    rs = [new_id(0) for _ in range(riders)]
    ids = []
    for i, d in enumerate(ds):
        for cmd in (c.RegisterDriver(driver_id=d, name=f"d{i}"), c.GoOnline(driver_id=d)):
            env = c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=now, command=cmd)
            bus.send_command(env)
            ids.append(env.command_id)
    for i, r in enumerate(rs):
        env = c.CommandEnvelope(
            command_id=str(uuid.uuid4()),
            issued_at=now,
            command=c.RegisterRider(rider_id=r, name=f"r{i}"),
        )
        bus.send_command(env)
        ids.append(env.command_id)
    bus.flush()
    for cid in ids:
        assert bus.wait_outcome(cid, 120) is not None, "registration timed out"
    return ds, rs


def run_worker(settings: Settings, until: threading.Event) -> KafkaWorker:
    worker = build_kafka_worker(settings, member="bench")
    thread = threading.Thread(target=lambda: worker.run(until=until.is_set), daemon=True)
    thread.start()
    worker._thread = thread  # type: ignore[attr-defined]
    return worker


def bench_ingest(bootstrap: str, pings: int, per_record: int) -> dict[str, float]:
    """Register drivers with one worker, stop it, pre-produce the pings, then time a fresh
    worker applying them (from its first applied ping to the last: excludes group join and
    restore)."""
    import random

    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, prefix, 1)
    settings = settings_for(bootstrap, prefix)
    try:
        stop = threading.Event()
        first = run_worker(settings, stop)
        bus = KafkaTransport(bootstrap, prefix)
        drivers, _ = register(bus, 2_000, 0)
        bus.close()
        stop.set()
        first._thread.join()  # type: ignore[attr-defined]
        first.close()
        rng, city = random.Random(1), City()
        producer = new_producer(bootstrap, linger_ms=20, batch_size=1 << 20)
        topic = Topics(prefix).locations
        now = time.time()
        batch: list[Ping] = []
        for i in range(pings):
            lat, lng = city.uniform(rng)
            batch.append(Ping(drivers[i % len(drivers)], lat, lng, now))
            if len(batch) == per_record:
                producer.send(topic, value=wire.encode_pings(batch), partition=0)
                batch = []
        if batch:
            producer.send(topic, value=wire.encode_pings(batch), partition=0)
        producer.flush()
        producer.close()
        stop = threading.Event()
        worker = run_worker(settings, stop)
        deadline = time.monotonic() + 300
        while worker.stats.pings == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        t0, p0 = time.perf_counter(), worker.stats.pings
        while worker.stats.pings < pings and time.monotonic() < deadline:
            time.sleep(0.001)
        elapsed = time.perf_counter() - t0
        stop.set()
        worker._thread.join()  # type: ignore[attr-defined]
        worker.close()
        return {
            "pings": worker.stats.pings,
            "per_record": per_record,
            "timed_pings": worker.stats.pings - p0,
            "seconds": elapsed,
            "pings_per_s": (worker.stats.pings - p0) / elapsed,
        }
    finally:
        delete_topics(bootstrap, prefix)


def bench_latency(bootstrap: str, drivers: int, rate: float, seconds: float) -> dict[str, float]:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, prefix, 1)
    settings = settings_for(bootstrap, prefix)
    stop = threading.Event()
    logs = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    # The worker runs in its own process, as deployed: the client below shares nothing.
    worker = start_worker(settings, logs / "worker.log", "bench-latency")
    try:
        return _latency_run(bootstrap, prefix, drivers, rate, seconds, stop)
    finally:
        stop.set()
        stop_worker(worker)
        delete_topics(bootstrap, prefix)


def _latency_run(
    bootstrap: str, prefix: str, drivers: int, rate: float, seconds: float, stop: threading.Event
) -> dict[str, float]:
    bus = KafkaTransport(bootstrap, prefix)
    riders_needed = int(rate * seconds) + 10
    ds, rs = register(bus, drivers, riders_needed)
    import random

    rng, city = random.Random(2), City()
    positions = {d: city.uniform(rng) for d in ds}
    bus.send_pings([Ping(d, *positions[d], time.time()) for d in ds])
    bus.flush()
    time.sleep(1.0)
    consumer = new_consumer(bootstrap, group_id=None)
    tp = TopicPartition(Topics(prefix).events, 0)
    consumer.assign([tp])
    consumer.seek_to_end(tp)
    consumer.position(tp)
    sent_at: dict[str, float] = {}
    offered_at: dict[str, float] = {}

    decided_at: dict[str, float] = {}
    sent_wall: dict[str, float] = {}

    def follow() -> None:
        while not stop.is_set() or len(offered_at) < len(sent_at):
            for records in consumer.poll(timeout_ms=50).values():
                seen = time.perf_counter()
                for d in (d for r in records for d in decode_events(r.value, r.headers)):
                    if d.topic == "dispatch.Ride.Offered":
                        offered_at.setdefault(d.originator_key, seen)
                        stamp = orjson.loads(d.state)["timestamp"]["_data_"]
                        decided_at.setdefault(
                            d.originator_key, datetime.fromisoformat(stamp).timestamp()
                        )
            if stop.is_set() and time.monotonic() > follow_deadline[0]:
                return

    follow_deadline = [float("inf")]
    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    interval = 1.0 / rate
    next_at = time.perf_counter()
    last_ping = time.time()
    for i in range(int(rate * seconds)):
        ride = new_id(0)
        # Uniform pickups, like the drivers: this measures the worker, not a market where
        # hot spots run out of drivers (drivers never answer here, so offers hold them).
        lat, lng = city.uniform(rng)
        env = c.CommandEnvelope(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            command=c.RequestRide(
                ride_id=ride,
                rider_id=rs[i],
                pickup=LatLng(lat=lat, lng=lng),
                dropoff=LatLng(lat=lat + 0.01, lng=lng),
            ),
        )
        now = time.perf_counter()
        if now < next_at:
            time.sleep(next_at - now)
        sent_at[str(ride)] = time.perf_counter()
        sent_wall[str(ride)] = time.time()
        bus.send_command(env)
        bus.flush()
        next_at += interval
        if time.time() - last_ping > 0.1:
            # Every driver pings every 4 s, each on its own phase: 1/40 of them a tenth.
            phase = int(time.time() * 10) % 40
            bus.send_pings([Ping(d, *positions[d], time.time()) for d in ds[phase::40]])
            last_ping = time.time()
    follow_deadline[0] = time.monotonic() + 10
    stop.set()
    reader.join(timeout=15)
    start0 = min(sent_at.values())
    slow = sorted(
        ((offered_at[k] - v) * 1000, v - start0) for k, v in sent_at.items() if k in offered_at
    )[-8:]
    print(
        "slowest (latency ms, sent at s):",
        [(round(a), round(b, 2)) for a, b in slow],
        file=sys.stderr,
    )
    decided = sorted((decided_at[k] - v) * 1000 for k, v in sent_wall.items() if k in decided_at)
    latencies = sorted((offered_at[k] - v) * 1000 for k, v in sent_at.items() if k in offered_at)
    consumer.close()
    bus.close()

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q / 100 * len(values)))]

    return {
        "requests": len(sent_at),
        "offered": len(latencies),
        "rate": rate,
        "drivers": drivers,
        # produced -> offer read back by this client (includes the client's own lag)
        "p50_ms": pct(latencies, 50),
        "p95_ms": pct(latencies, 95),
        "p99_ms": pct(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        # produced -> offer decided by the worker (the event's time; its batch commits
        # a few ms later)
        "decided_p50_ms": pct(decided, 50),
        "decided_p95_ms": pct(decided, 95),
        "decided_p99_ms": pct(decided, 99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--pings", type=int, default=200_000)
    parser.add_argument("--single-pings", type=int, default=20_000)
    parser.add_argument("--drivers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {
        "ingest_batched": bench_ingest(args.bootstrap, args.pings, 1_000),
        "ingest_single": bench_ingest(args.bootstrap, args.single_pings, 1),
        "request_to_offer": bench_latency(args.bootstrap, args.drivers, args.rate, args.seconds),
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, figures in results.items():
            print(name, {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
