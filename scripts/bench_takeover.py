"""Kafka shard takeover against history length: partition assigned -> first batch committed.

For each history length (events in the shard's partition) the script writes a log with the
real shard application on the Kafka store: a fixed city (``--drivers`` drivers, all online,
``--riders`` riders) whose rides run their whole life (request, offer, accept, arrival,
trip, completion: about 20 events a ride with the command records) at a fixed rate of
``--per-day`` events per day of event time. So every history spans ``N / per-day`` days
and ends with the same live state: the same users, and the last 24 h of rides and command
records (the idempotency window). Then a worker takes the shard once (a full replay: no
checkpoint yet), writes a checkpoint, and a tail of about half a checkpoint interval is
appended through the command topic.

Measured, ``--runs`` times for each length, each in a fresh process: a worker joins the
group with an empty local state (nothing on disk: the store is rebuilt from Kafka),
restores the shard, and commits its first batch (a probe command's outcome). Reported:
restore (open_shard) s, first batch committed s after assignment (the restore plus the
probe's send to its outcome), the same from the moment the assignment reached the worker
to the outcome (``assigned_to_outcome_s``: it also counts what the worker does between
the restore and the probe's send, such as collecting and freezing its heap), the CPU
seconds of the process (all its threads) over that time (``cpu_s``: steadier than wall
time on a shared machine), the events read, and the process's peak RSS. ``--old-tree DIR``
also measures a checkout of another commit (``PYTHONPATH=DIR``) on the same logs, side by
side, alternating.

Generation is slow for long histories (roughly 10-20k events/s on a 2-core machine): the
logs are kept (``--keep``) and can be reused with ``--prefix``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CENTRE = (37.77, -122.42)
# A full replay of a long history runs for minutes inside the group's assignment callback,
# which blocks the consumer's heartbeats: with the worker's own 10 s session the group
# would expel the member before it is done. Both trees get the same long session here (it
# changes nothing of what is timed).
PATIENT = {"session_timeout_ms": 600_000, "heartbeat_interval_ms": 3_000,
           "max_poll_interval_ms": 900_000}  # fmt: skip


def settings_for(bootstrap: str, prefix: str) -> Any:
    from dispatch.settings import Settings

    return Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, shards=1)


# -- writing a history ---------------------------------------------------------------------
def generate(bootstrap: str, prefix: str, events: int, args: argparse.Namespace) -> int:
    from dispatch.adapters.kafka.topics import create_topics
    from dispatch.bootstrap import build_application
    from dispatch.domain.ids import new_id
    from dispatch.matching.decisions import MakeOffer
    from schemas import commands as c
    from schemas.common import LatLng

    create_topics(bootstrap, prefix, 1)
    app = build_application(settings_for(bootstrap, prefix), 0)
    step = 86_400.0 / args.per_day  # event time per event
    now = time.time() - events * step - 3_600.0
    written = 0

    def handle(command: Any) -> None:
        nonlocal written
        at = datetime.fromtimestamp(now, UTC)
        env = c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=at, command=command)
        written += len(app.handle(env, at))  # its events, its command record among them

    drivers = [new_id(0) for _ in range(args.drivers)]
    riders = [new_id(0) for _ in range(args.riders)]
    for d in drivers:
        handle(c.RegisterDriver(driver_id=d, name="driver"))
        handle(c.GoOnline(driver_id=d))
    for r in riders:
        handle(c.RegisterRider(rider_id=r, name="rider"))
    app.commit()
    here = LatLng(lat=CENTRE[0], lng=CENTRE[1])
    there = LatLng(lat=CENTRE[0] + 0.02, lng=CENTRE[1])
    started, k = time.perf_counter(), 0
    while written < events:
        for _ in range(100):
            ride, driver, rider = new_id(0), drivers[k % len(drivers)], riders[k % len(riders)]
            before = written
            handle(c.RequestRide(ride_id=ride, rider_id=rider, pickup=here, dropoff=there))
            at = datetime.fromtimestamp(now, UTC)
            written += len(app.decide(MakeOffer(ride, driver, 120.0, 800.0, now + 15.0), at))
            for command in (c.AcceptOffer, c.MarkArrived, c.StartTrip, c.CompleteTrip):
                handle(command(ride_id=ride, driver_id=driver))
            now += (written - before) * step
            k += 1
        app.commit()
        if k % 20_000 == 0:
            rate = written / (time.perf_counter() - started)
            print(f"  {prefix}: {written:,} events ({rate:,.0f}/s)", file=sys.stderr)
    app.close()
    return written


def prime(bootstrap: str, prefix: str, tail_commands: int) -> dict[str, Any]:
    """Take the shard once (full replay), write a checkpoint, then append a tail."""
    from dispatch.adapters.kafka.transport import KafkaTransport
    from dispatch.bootstrap import build_kafka_worker
    from schemas import commands as c

    settings = settings_for(bootstrap, prefix)
    worker = build_kafka_worker(settings, member="primer", **PATIENT)
    bus = KafkaTransport(bootstrap, prefix)
    try:
        while 0 not in worker.shards:
            worker.run_once()
        host = worker.shards[0]
        drivers = list(host.worker.matcher.drivers)
        sent = 0

        def send(n: int) -> None:
            nonlocal sent
            for i in range(n):
                d = drivers[(sent + i) % len(drivers)]
                go = (
                    c.GoOffline(driver_id=d)
                    if (sent + i) // len(drivers) % 2 == 0
                    else c.GoOnline(driver_id=d)
                )
                env = c.CommandEnvelope(
                    command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), command=go
                )
                bus.send_command(env)
            sent += n

        deadline = time.monotonic() + 1_800
        while not (host.checkpoints and host.checkpoints.complete) and time.monotonic() < deadline:
            send(200)
            for _ in range(5):
                worker.run_once()
            host = worker.shards.get(0, host)  # (reopened if the group moved it)
        if not (host.checkpoints and host.checkpoints.complete):
            raise SystemExit("no checkpoint was completed")
        checkpoint = max(p for p, _ in host.checkpoints.complete.values())
        send(tail_commands)
        while worker.stats.commands < sent:
            worker.run_once()
        return {"checkpoint": checkpoint, "log_end": host.app.position()}
    finally:
        worker.close()
        bus.close()


# -- one takeover, in its own process ------------------------------------------------------
def takeover(bootstrap: str, prefix: str) -> dict[str, Any]:
    from kafka.errors import KafkaTimeoutError

    from dispatch.adapters.kafka.transport import KafkaTransport
    from dispatch.bootstrap import build_kafka_worker
    from schemas import commands as c

    bus = KafkaTransport(bootstrap, prefix)
    member = f"taker-{uuid.uuid4().hex[:6]}"
    worker = build_kafka_worker(settings_for(bootstrap, prefix), member=member, **PATIENT)
    assigned: list[tuple[float, float]] = []  # when the group's assignment reached it
    assign = worker.assign

    def timed_assign(shards: set[int]) -> None:
        assigned.append((time.perf_counter(), time.process_time()))
        assign(shards)

    worker.assign = timed_assign  # type: ignore[method-assign]
    try:
        deadline = time.monotonic() + 900  # a full replay of 10M events takes minutes
        while 0 not in worker.shards:
            if time.monotonic() > deadline:
                raise SystemExit("the group never assigned the shard")
            worker.run_once()
        restored = worker.stats.restored[0]
        driver = next(iter(worker.shards[0].worker.matcher.drivers))
        probe = c.CommandEnvelope(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            command=c.GoOnline(driver_id=driver),
        )
        sent = time.perf_counter()
        bus.send_command(probe)
        deadline = time.monotonic() + 900  # the old code restores twice (see the docs)
        while True:
            if time.monotonic() > deadline:
                raise SystemExit("the probe command got no outcome")
            worker.run_once()
            try:
                if bus.wait_outcome(probe.command_id, 0.01) is not None:
                    break
            except KafkaTimeoutError:  # the probe is not sent yet
                continue
        answered, cpu = time.perf_counter(), time.process_time()
        host = worker.shards[0]
        return {
            "restore_s": restored,
            "first_batch_s": restored + answered - sent,
            "assigned_to_outcome_s": answered - assigned[-1][0],
            "cpu_s": cpu - assigned[-1][1],
            "restored_from": getattr(host.worker, "restored_from", None),
            "events_held": len(host.app.recorder.table),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    finally:
        worker.close()
        bus.close()


KEYS = ("restore_s", "first_batch_s", "assigned_to_outcome_s", "cpu_s", "rss_mb")


def group_empty(bootstrap: str, prefix: str, timeout_s: float = 900) -> None:
    """Wait until the workers' group has no member left (a member that did not leave holds
    the shard until its session, long here, times out)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            group = admin.describe_groups([f"{prefix}.workers"])[f"{prefix}.workers"]
            if not group["members"]:
                return
            time.sleep(1)
        raise SystemExit(f"the group of {prefix} still has members")
    finally:
        admin.close()


def run_takeover(bootstrap: str, prefix: str, tree: Path) -> dict[str, Any]:
    group_empty(bootstrap, prefix)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(Path(__file__).resolve()), "--takeover", prefix]
    command += ["--bootstrap", bootstrap]
    out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tree)
    if out.returncode != 0:
        raise SystemExit(f"the takeover in {tree} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 4_000_000, 10_000_000])
    parser.add_argument("--per-day", type=int, default=200_000)
    parser.add_argument("--drivers", type=int, default=2_000)
    parser.add_argument("--riders", type=int, default=5_000)
    parser.add_argument("--tail-commands", type=int, default=12_500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--old-tree", type=Path, help="also measure this checkout")
    parser.add_argument("--prefix", nargs="*", help="reuse these logs (one per --events)")
    parser.add_argument("--keep", action="store_true", help="keep the topics")
    parser.add_argument("--takeover", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.takeover:
        print(json.dumps(takeover(args.bootstrap, args.takeover)))
        return
    if any(n < 1 for n in args.events) or args.per_day < 1 or args.runs < 1:
        parser.error("--events, --per-day and --runs must be positive")
    from dispatch.adapters.kafka.topics import delete_topics

    prefixes = args.prefix or []
    if len(prefixes) > len(args.events):
        parser.error("give at most one --prefix per --events value (the first ones reused)")
    trees = {"new": ROOT} | ({"old": args.old_tree.resolve()} if args.old_tree else {})
    results: dict[str, Any] = {
        "per_day": args.per_day,
        "drivers": args.drivers,
        "riders": args.riders,
    }
    try:
        for i, n in enumerate(args.events):
            if i < len(prefixes):
                prefix, info = prefixes[i], {"reused": True}
            else:
                prefix = f"bench-takeover-{n}-{uuid.uuid4().hex[:6]}"
                prefixes.append(prefix)
                t = time.perf_counter()
                written = generate(args.bootstrap, prefix, n, args)
                info = {"written": written, "generate_s": round(time.perf_counter() - t, 1)}
                info |= prime(args.bootstrap, prefix, args.tail_commands)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
            for _ in range(args.runs):
                for name, tree in trees.items():  # alternating, side by side
                    runs[name].append(run_takeover(args.bootstrap, prefix, tree))
            summary = {
                name: {key: statistics.median(r[key] for r in rs) for key in KEYS} | {"runs": rs}
                for name, rs in runs.items()
            }
            results[str(n)] = {"prefix": prefix, **info, **summary}
            print(json.dumps({str(n): results[str(n)]}, indent=1), flush=True)
    finally:
        if not args.keep:
            for prefix in prefixes:
                delete_topics(args.bootstrap, prefix)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
