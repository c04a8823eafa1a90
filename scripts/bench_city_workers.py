"""Worker throughput on Kafka for ONE city split over 4 shards by region: 1 worker process
against 2 (issue #14).

    .venv/bin/python scripts/bench_city_workers.py [--runs 2] [--per-shard 4000]
        [--cpus 0,1] [--no-pin] [--no-calibrate]

Needs the local broker (scripts/kafka-local.sh start). The settings have one market, the
simulated city (``dispatch/simulator/cityshards.py``: 37.77,-122.42, radius 23.2 km) split
into 4 regions on shards 0..3 (``DISPATCH_MARKETS`` with ``"shards": 4``). Each run, on
fresh topics:

1. N ``dispatch worker`` processes start (wall clock), worker i pinned with ``taskset -a``
   to the i-th CPU of ``--cpus``, and the script waits until the group has given every
   shard to exactly one of them and nothing moved for 2 s (their logs);
2. every driver pings once (a place near a region border, sent to its owner and to the
   shards near it, as the API's transport does), then the backlog is produced in ONE Kafka
   transaction, so the workers (read_committed) see all of it at once when it commits. Per
   shard: ``--per-shard``/4 drivers registered in the region they are in and put online,
   as many riders registered at home (a region drawn at random), then one ride request per
   rider with a pickup near a region border anywhere in the city: the ride lives in the
   pickup's region, so about 3 requests in 4 take the rider's lock in another shard than
   the ride's (``OpenRide``/``UnlockRider`` messages), and rides are offered drivers across
   borders (``Reserve``/``Granted``). Offers never expire during a run (offer timeout
   600 s) and pings stay fresh (``DISPATCH_PING_TTL_S`` 600), so no work is redone;
3. the outcomes topic is read (read_committed) until every command has its outcome. The
   rate (``commands_per_s``, the figure of the target) is the commands over the time from
   the commit to the last outcome; ``commands_per_s_first_to_last`` takes it from the
   first outcome to the last, as ``scripts/bench_workers.py`` does (that leaves out each
   shard's first batch, which is large here: a batch takes all its shard's records of a
   poll, up to thousands). Work that follows a command's outcome in another shard is timed
   too: ``commands_per_s_to_rides_opened`` runs to the last ``Ride.Requested`` (every
   ``OpenRide`` applied at the pickup's shard; the time of its events record), and
   ``commands_per_s_to_settled`` until the group has committed all its input and the ends
   of the events and shard-messages topics have not moved for 3 s (this includes the
   matcher's timers: a ride that found no free driver searches again 2 s later, then 4 s,
   so it is not a throughput figure). The events are read once, after the timing, to
   count what was done (rides opened, asks, offers across shards). Also taken: the CPU
   time each worker used from the commit to the last outcome (``/proc/<pid>/stat``), as its
   share of a CPU and as commands per worker CPU-second (which other jobs on a shared
   machine disturb less than the wall-clock rate: equal figures for 1 and 2 workers mean
   that a second worker costs no extra work, whatever CPU it was given).

Runs alternate 1, 2, 1, 2, ... (``--runs`` pairs), so slow and quick moments of a shared
machine fall on both. Printed (stdout, JSON): each run, the medians, each pair's ratio, the
CPU model, the CPUs, the load average before and after each run, and
``scripts/bench_index.py`` queries/s. Progress goes to stderr. Asserts nothing.

Placement: a worker gets one CPU of its own only where the machine has a CPU for each
worker besides those of the broker and of this load generator. Neither is pinned here
(the broker is a shared process, not this script's), so on a machine of 2 CPUs both share
the workers' two: the output says so ("placement").

The geometry helpers (``CityShards``, border places) are shared with
``scripts/bench_cross_shard_offers.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h3
import orjson
from benchmachine import calibrate, cpu_model
from kafka import TopicPartition

from dispatch.adapters.kafka import wire
from dispatch.adapters.kafka.config import new_consumer, new_producer
from dispatch.adapters.kafka.eventstore.codec import decode_events
from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.domain.ids import new_id, shard_of
from dispatch.markets import MarketMap
from dispatch.messages import Ping
from dispatch.regions import RegionMap, split_market
from dispatch.settings import Settings
from dispatch.simulator.city import M_PER_DEG_LAT
from dispatch.simulator.cityshards import split_city
from schemas import commands as c
from schemas.common import LatLng

SHARDS = 4
EDGE_MARGIN_KM = 4.0  # border places stay this far inside the market's disk
LONG_S = "600"  # offer timeout and ping TTL: nothing expires during a run
Place = tuple[float, float]


# -- shared with bench_cross_shard_offers.py --------------------------------------------------
def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` (0..1) percentile of sorted values, nearest rank below."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine(calibrated: bool) -> dict[str, Any]:
    """The CPU model, the CPUs, the load average now and (unless told not to) the
    calibration that every section of docs/BENCHMARKS.md quotes."""
    out: dict[str, Any] = {"cpu_model": cpu_model(), "cpus": os.cpu_count()}
    out["load_average_before_calibration"] = load_average()
    if calibrated:
        out["bench_index_queries_per_s"] = round(calibrate())
    return out


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of ``pid`` (and the threads it starts later) to ``cpu``."""
    subprocess.run(
        ["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True, capture_output=True
    )


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def toward(a: Place, b: Place, t: float) -> Place:
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


def jitter(place: Place, metres: float, rng: random.Random) -> Place:
    """A place uniform in the disk of ``metres`` around ``place`` (flat-earth)."""
    r, angle = metres * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    m_per_deg_lng = M_PER_DEG_LAT * math.cos(math.radians(place[0]))
    return (
        place[0] + r * math.sin(angle) / M_PER_DEG_LAT,
        place[1] + r * math.cos(angle) / m_per_deg_lng,
    )


def distance_m(a: Place, b: Place) -> float:
    return h3.great_circle_distance(a, b, unit="m")


@dataclass(frozen=True)
class Border:
    """Two neighbouring region cells (H3 res 7) of different shards: ``inner`` (the centre
    of the cell of shard ``inside``) and ``outer`` (of ``outside``); half way between them
    is their shared edge."""

    inside: int
    outside: int
    inner: Place
    outer: Place

    @property
    def edge(self) -> Place:
        return toward(self.inner, self.outer, 0.5)


class CityShards:
    """The simulated city as one market over ``shards`` shards: its settings, its routing
    (``MarketMap``, as the workers and the API route) and its region borders."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.base = split_city(Settings(kafka_bootstrap=None, shards=shards), shards)
        self.market = self.base.markets[0]
        self.markets = MarketMap(self.base.markets, shards)
        self.regions: RegionMap = split_market(self.market)
        centre = (self.market.lat, self.market.lng)
        found: list[Border] = []
        for cell, shard in sorted(self.regions.cells.items()):
            for other in sorted(h3.grid_ring(cell, 1)):
                across = self.regions.cells.get(other)
                if across is None or across == shard:
                    continue
                border = Border(shard, across, h3.cell_to_latlng(cell), h3.cell_to_latlng(other))
                if (
                    distance_m(border.edge, centre)
                    <= (self.market.radius_km - EDGE_MARGIN_KM) * 1e3
                ):
                    found.append(border)
        self.borders = found

    def settings(self, bootstrap: str, prefix: str, **overrides: Any) -> Settings:
        return self.base.model_copy(
            update={"kafka_bootstrap": bootstrap, "topic_prefix": prefix, **overrides}
        )

    def shard_for(self, place: Place) -> int:
        return self.markets.shard_for(*place)

    def near_border(
        self, border: Border, side: int, t: tuple[float, float], spread_m: float,
        rng: random.Random,
    ) -> Place:  # fmt: skip
        """A place of shard ``side`` (``border.inside`` or ``border.outside``) on the line
        from the inner cell's centre to the outer's at a fraction in ``t`` (0.5: the
        border), moved up to ``spread_m`` at random; drawn again until routing agrees."""
        for _ in range(1_000):
            place = jitter(toward(border.inner, border.outer, rng.uniform(*t)), spread_m, rng)
            if self.shard_for(place) == side:
                return place
        raise RuntimeError(f"no place of shard {side} found near {border}")


# -- this benchmark ----------------------------------------------------------------------------
RESTORED = re.compile(r"shard (\d+) restored")
RELEASED = re.compile(r"shard (\d+) released")


def hosted(log: Path) -> set[int]:
    """The shards a worker hosts now, from its log."""
    shards: set[int] = set()
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        if found := RESTORED.search(line):
            shards.add(int(found[1]))
        elif found := RELEASED.search(line):
            shards.discard(int(found[1]))
    return shards


def wait_placed(
    procs: list[subprocess.Popen[bytes]], logs: list[Path], shards: int = SHARDS
) -> list[list[int]]:
    """Wait until every shard is hosted by exactly one worker, every worker hosts some, and
    nothing moved for 2 s. Returns each worker's shards."""
    deadline, last, since = time.monotonic() + 180, None, time.monotonic()
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited ({proc.returncode}): see {log}")
        now = [sorted(hosted(log)) for log in logs]
        if now != last:
            last, since = now, time.monotonic()
        flat = sorted(s for shards in now for s in shards)
        if flat == list(range(shards)) and all(now) and time.monotonic() - since >= 2.0:
            return now
        time.sleep(0.2)
    raise RuntimeError(f"the group did not settle: {last}")


@dataclass
class Backlog:
    pings: list[Ping]
    records: list[tuple[int, bytes, bytes]]  # partition, key, value
    requests: int
    lock_elsewhere: int  # requests whose ride lives in another shard than the rider's home


def build_backlog(city: CityShards, per_shard: int, rng: random.Random) -> Backlog:
    now, at = datetime.now(UTC), time.time()
    pings: list[Ping] = []
    by_shard: dict[int, list[c.Command]] = {}
    for shard in range(SHARDS):
        mine = [b for b in city.borders if b.inside == shard]
        commands: list[c.Command] = []
        for i in range(per_shard // 4):
            driver = new_id(shard)
            place = city.near_border(rng.choice(mine), shard, (0.1, 0.45), 400, rng)
            pings.append(Ping(driver, place[0], place[1], at))
            commands += [
                c.RegisterDriver(driver_id=driver, name=f"d{i}"),
                c.GoOnline(driver_id=driver),
            ]
        by_shard[shard] = commands
    requests: dict[int, list[c.Command]] = {s: [] for s in range(SHARDS)}
    lock_elsewhere = 0
    for shard in range(SHARDS):
        for i in range(per_shard // 4):
            home = rng.randrange(SHARDS)
            rider = new_id(home)
            by_shard[home].append(c.RegisterRider(rider_id=rider, name=f"r{shard}-{i}"))
            border = rng.choice(city.borders)
            pickup = city.near_border(border, border.inside, (0.2, 0.48), 300, rng)
            ride = new_id(city.shard_for(pickup))
            lock_elsewhere += shard_of(ride) != home
            requests[home].append(
                c.RequestRide(
                    ride_id=ride,
                    rider_id=rider,
                    pickup=LatLng(lat=pickup[0], lng=pickup[1]),
                    dropoff=LatLng(lat=pickup[0] + 0.01, lng=pickup[1]),
                )
            )
    records: list[tuple[int, bytes, bytes]] = []
    for shard in range(SHARDS):
        for command in by_shard[shard] + requests[shard]:
            env = c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=now, command=command)
            key, value = wire.encode_command(env)
            records.append((shard, key, value))
    total_requests = sum(len(r) for r in requests.values())
    return Backlog(pings, records, total_requests, lock_elsewhere)


def produce(bootstrap: str, prefix: str, city: CityShards, backlog: Backlog) -> tuple[float, float]:
    """Pings first (plain), then the commands in one transaction; returns when it committed
    (perf_counter, and wall clock)."""
    bus = KafkaTransport(bootstrap, prefix)
    bus.nearby = city.markets.nearby_shards  # as the API's transport: owner and shards near
    bus.send_pings(backlog.pings)
    bus.flush()
    bus.close()
    producer = new_producer(
        bootstrap, transactional_id=f"{prefix}.backlog", linger_ms=20, batch_size=1 << 20
    )
    topic = Topics(prefix).commands
    producer.init_transactions()
    producer.begin_transaction()
    for partition, key, value in backlog.records:
        producer.send(topic, key=key, value=value, partition=partition)
    producer.commit_transaction()
    committed = time.perf_counter(), time.time()
    producer.close()
    return committed


def count_outcomes(bootstrap: str, prefix: str, total: int) -> tuple[int, float, float]:
    """Read the outcomes until ``total`` arrived: (seen, first, last) perf_counter times."""
    consumer = new_consumer(bootstrap, group_id=None)
    parts = [TopicPartition(Topics(prefix).outcomes, p) for p in range(SHARDS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    seen, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + 600
    try:
        while seen < total and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=100).values():
                if records and not first:
                    first = time.perf_counter()
                seen += len(records)
                last = time.perf_counter()
    finally:
        consumer.close()
    return seen, first, last


def end_offsets(consumer: Any, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """``consumer.end_offsets``, asked again when kafka-python 3.0.12 leaves a partition out
    of its answer (a KeyError from ``beginning_or_end_offset``, seen once in about 20 runs
    of this script)."""
    for attempt in range(10):
        try:
            return consumer.end_offsets(tps)
        except KeyError as missing:
            print(f"end_offsets: {missing} left out, asking again", file=sys.stderr)
            time.sleep(0.2 * (attempt + 1))
    return consumer.end_offsets(tps)


def settle(bootstrap: str, prefix: str, quiet_s: float = 3.0) -> float:
    """Wait until the workers have taken all their input and its consequences are written:
    the group's committed offsets at the end of every consumed partition (short of the one
    commit marker a transactional write leaves after its last record) and the ends of the
    events and shard-messages topics unmoved for ``quiet_s`` (a ride that found no driver
    may still search again: that is not waited for). Returns when they last moved."""
    topics = Topics(prefix)
    consumed = [TopicPartition(t, p) for t in topics.consumed for p in range(SHARDS)]
    watched = [
        TopicPartition(t, p) for t in (topics.events, topics.shard_messages) for p in range(SHARDS)
    ]
    # the workers' group id, to read its committed offsets: assigned, never joined, never
    # committing (the client settings commit nothing unless told to)
    group = new_consumer(bootstrap, group_id=f"{prefix}.workers")
    group.assign(consumed)
    moved, ends = time.perf_counter(), None
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            now = end_offsets(group, consumed + watched)
            if now != ends:
                ends, moved = now, time.perf_counter()
            behind = any(now[tp] - (group.committed(tp) or 0) > 1 for tp in consumed)
            if not behind and time.perf_counter() - moved >= quiet_s:
                break
            time.sleep(0.1)
    finally:
        group.close()
    return moved


def count_events(bootstrap: str, prefix: str) -> tuple[dict[str, int], float]:
    """What the run did, read after the timing: rides opened, asks and offers (across shards
    and within one), per event type; and when the last ride was opened (the time of the
    events record, written by the worker's producer just before its batch committed)."""
    consumer = new_consumer(bootstrap, group_id=None)
    tps = [TopicPartition(Topics(prefix).events, p) for p in range(SHARDS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = end_offsets(consumer, tps)
    kinds: Counter[str] = Counter()
    last_opened_ms = 0
    try:
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    for event in decode_events(record.value, record.headers):
                        kinds[event.topic.removeprefix("dispatch.")] += 1
                        if event.topic == "dispatch.Ride.Requested":
                            last_opened_ms = max(last_opened_ms, record.timestamp)
                        if event.topic == "dispatch.Ride.Offered":
                            driver = uuid.UUID(orjson.loads(event.state)["driver_id"])
                            ride = uuid.UUID(event.originator_key)
                            kinds["offers_across_shards"] += shard_of(driver) != shard_of(ride)
    finally:
        consumer.close()
    wanted = ("Ride.Requested", "Ride.DriverAsked", "Ride.Offered", "offers_across_shards",
              "Driver.OfferReceived", "Ride.AskEnded")  # fmt: skip
    counts = {k: kinds[k] for k in wanted}
    counts["events"] = sum(v for k, v in kinds.items() if k != "offers_across_shards")
    return counts, last_opened_ms / 1000


def run(
    bootstrap: str, city: CityShards, workers: int, per_shard: int, cpus: list[int],
    seed: int, logs: Path,
) -> dict[str, Any]:  # fmt: skip
    prefix = f"bench-city-{uuid.uuid4().hex[:6]}"
    settings = city.settings(bootstrap, prefix, offer_timeout_s=float(LONG_S))
    create_topics(bootstrap, prefix, SHARDS)
    backlog = build_backlog(city, per_shard, random.Random(seed))
    procs: list[subprocess.Popen[bytes]] = []
    load_before = load_average()
    try:
        files = [logs / f"{prefix}-worker-{i}.log" for i in range(workers)]
        for i, log in enumerate(files):
            procs.append(start_worker(settings, log, f"bench-city-{i}"))
            if cpus:
                pin(procs[-1].pid, cpus[i % len(cpus)])
        placed = wait_placed(procs, files)
        committed, committed_wall = produce(bootstrap, prefix, city, backlog)
        cpu_before = [cpu_seconds(p.pid) for p in procs]  # a few ms after the commit
        total = len(backlog.records)
        seen, first, last = count_outcomes(bootstrap, prefix, total)
        cpu = [cpu_seconds(p.pid) - b for p, b in zip(procs, cpu_before, strict=True)]
        settled = settle(bootstrap, prefix)
        load_after = load_average()
        moved = [hosted(log) for log in files] != [set(p) for p in placed]
        done, last_opened = count_events(bootstrap, prefix)
        opened = max(last_opened - committed_wall, last - committed)
        return {
            "workers": workers,
            "cpus": [cpus[i % len(cpus)] for i in range(workers)] if cpus else "not pinned",
            "shards_per_worker": placed,
            "shards_moved_during_run": moved,
            "commands": total,
            "ride_requests": backlog.requests,
            "requests_with_lock_in_another_shard": backlog.lock_elsewhere,
            "outcomes": seen,
            # the backlog is visible from its commit: from there to the last outcome
            "seconds": round(last - committed, 2),
            "commands_per_s": round(seen / (last - committed)),
            # as scripts/bench_workers.py: first outcome to last (leaves out each shard's
            # first batch, which is large here: a batch takes all it polled)
            "first_to_last_outcome_s": round(last - first, 2),
            "commands_per_s_first_to_last": round(seen / (last - first)),
            "commit_to_first_outcome_s": round(first - committed, 2),
            # from the commit until the events and shard-messages stopped moving
            "settled_s": round(max(settled, last) - committed, 2),
            "commands_per_s_to_settled": round(seen / (max(settled, last) - committed)),
            # from the commit until the last ride was opened at its pickup's shard (every
            # OpenRide applied; no timer in the way, unlike "settled")
            "rides_opened_s": round(opened, 2),
            "commands_per_s_to_rides_opened": round(seen / opened),
            # CPU time the workers used from the commit to the last outcome, and each one's
            # share of the wall time (1.0: a whole CPU all the time)
            "worker_cpu_s": round(sum(cpu), 2),
            "worker_cpu_share": [round(x / (last - committed), 2) for x in cpu],
            "commands_per_worker_cpu_s": round(seen / sum(cpu)),
            "done": done,
            "load_average_before": load_before,
            "load_average_after": load_after,
        }
    finally:
        stop_all(procs)
        delete_topics(bootstrap, prefix)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every worker first (by its own pid), so none takes over another's shards
    on the way out; then wait for each (SIGKILL if it does not stop)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        stop_worker(proc)


RATES = ("commands_per_s", "commands_per_s_first_to_last", "commands_per_s_to_rides_opened",
         "commands_per_s_to_settled", "commands_per_worker_cpu_s")  # fmt: skip


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per rate: the median and the runs of 1 and of 2 workers, the ratio of each pair
    (2 workers / the 1 worker run just before) and their median."""
    out: dict[str, Any] = {}
    for rate in RATES:
        ones = [r[rate] for r in runs if r["workers"] == 1]
        twos = [r[rate] for r in runs if r["workers"] == 2]
        ratios = [round(b / a, 2) for a, b in zip(ones, twos, strict=False)]
        out[rate] = {
            "one_worker": {"median": statistics.median(ones), "runs": ones},
            "two_workers": {"median": statistics.median(twos), "runs": twos},
            "ratio_per_pair": ratios,
            "ratio_median": statistics.median(ratios) if ratios else None,
        }
    out["target"] = "2 workers >= 1.8x the commands/s of one (commands_per_s)"
    out["load_average_range"] = [
        min(r["load_average_before"][0] for r in runs),
        max(r["load_average_after"][0] for r in runs),
    ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--runs", type=int, default=2, help="pairs of runs (1 then 2 workers)")
    parser.add_argument("--per-shard", type=int, default=4_000, help="commands a shard")
    parser.add_argument("--cpus", default="0,1", help="CPUs for worker 0, 1 (taskset)")
    parser.add_argument("--no-pin", action="store_true", help="leave the workers unpinned")
    parser.add_argument("--no-calibrate", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cpus = [] if args.no_pin else [int(x) for x in args.cpus.split(",")]
    os.environ["DISPATCH_PING_TTL_S"] = LONG_S  # the workers' ping TTL (inherited)
    result: dict[str, Any] = {"machine": machine(not args.no_calibrate)}
    result["placement"] = placement(cpus)
    city = CityShards(SHARDS)
    logs = Path(tempfile.mkdtemp(prefix="bench-city-workers-"))
    runs: list[dict[str, Any]] = []
    for pair in range(args.runs):
        for workers in (1, 2):
            print(f"pair {pair + 1}/{args.runs}: {workers} worker(s)...", file=sys.stderr)
            figures = run(
                args.bootstrap, city, workers, args.per_shard, cpus, args.seed + pair, logs
            )
            print(json.dumps(figures), file=sys.stderr)
            runs.append(figures)
    result["runs"] = runs
    result["summary"] = summary(runs)
    result["worker_logs"] = str(logs)
    print(json.dumps(result, indent=2))
    return 0


def placement(cpus: list[int]) -> str:
    count = os.cpu_count() or 1
    pinned = f"worker i pinned to CPU {cpus}[i] (taskset -a)" if cpus else "workers not pinned"
    if count <= 2:
        return (
            f"{count} CPUs: {pinned}; the broker and this load generator are not pinned and "
            "cannot be kept off the worker CPUs on this machine (no third CPU): they share them"
        )
    return f"{count} CPUs: {pinned}; the broker and this load generator are not pinned"


if __name__ == "__main__":
    raise SystemExit(main())
