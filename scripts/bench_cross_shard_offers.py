"""Request-to-offer latency on Kafka of rides offered a driver of ANOTHER shard, beside rides
offered a driver of their own shard, interleaved in one run (issue #14).

    .venv/bin/python scripts/bench_cross_shard_offers.py [--shards 4] [--workers 1]
        [--runs 3] [--rate 40] [--seconds 20] [--background 4000] [--riders-anywhere]
        [--no-calibrate]

Needs the local broker (scripts/kafka-local.sh start). One market, the simulated city
(``dispatch/simulator/cityshards.py``), split into ``--shards`` regions (2 or 4), served by
``--workers`` ``dispatch worker`` processes (default 1, hosting every shard; wall clock).

Sites. Places along region borders (pairs of neighbouring H3 res-7 cells of two shards,
``dispatch.regions``, as ``dispatch markets regions`` prints the map) at least 5.5 km
apart, alternately of two kinds. Every site's pickup is on one side of its border (shard R),
about 200 m from it; its drivers are 350-1,150 m from the pickup (plus up to 300 m at
random), on the same side (a "same-shard" site: registered in R) or just across the border
(a "cross-shard" site: registered in the shard O across it). A site's drivers are the only
ones within 3.5 km of its pickup (more than the 3 km search radius): a request at a
cross-shard site can only be offered a driver of O, which R asks of O (``Ride.DriverAsked``,
``Reserve``), O holds (``Driver.OfferReceived``) and grants (``Ride.Offered`` at R); one at a
same-shard site is offered in R's own batch. ``--background`` more drivers stand at random
places at least 4 km from every pickup (ping load, never matched). Riders are registered in
the pickup's shard (``--riders-anywhere``: in a shard drawn at random, so most requests
also take the rider's lock in another shard first).

Load. Every driver pings every 4 s on its own phase (to its owner and the shards near it,
as the API's transport sends them); ``--rate`` requests a second for ``--seconds``, same-
and cross-shard alternately, each a rider of its own at one of the sites of its kind (in
turn). Drivers never answer and offers do not expire during the run (offer timeout
120 s), so every request takes one driver of its site, and a site has drivers to spare.

Measured, per request: from just before its command is produced (``perf_counter``; the
producer is flushed at once) until this process reads back, from the events topic with a
``read_committed`` consumer, (1) the ride's ``Ride.Offered`` (the figure compared: the
offer as the ride's shard committed it, which is what the rider sees; for a cross-shard
ride that is after O's grant), and (2) the driver's ``Driver.OfferReceived`` (the offer
as the driver's app sees it, committed by the driver's owner). Also (3) "decided": the
``Ride.Offered`` event's own time (the worker's wall clock) minus the produce time. A
request is counted by the offer it actually got (the offered driver's shard against the
ride's), not by its site; requests whose offer did not match their site's kind, and
requests with no offer, are counted apart.

Printed (stdout, JSON): per run and kind p50/p95/p99/mean (ms) and counts, the ratio of the
p99s (cross / same), then the median of each over the runs, the CPU model, the load
average, ``scripts/bench_index.py`` queries/s. Progress on stderr. Asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from bench_city_workers import (
    Border,
    CityShards,
    Place,
    distance_m,
    jitter,
    load_average,
    machine,
    percentile,
    stop_all,
    wait_placed,
)
from kafka import TopicPartition

from dispatch.adapters.kafka.config import new_consumer
from dispatch.adapters.kafka.eventstore.codec import decode_events
from dispatch.adapters.kafka.processes import start_worker
from dispatch.adapters.kafka.topics import Topics, create_topics, delete_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.domain.ids import new_id, shard_of
from dispatch.messages import Ping
from dispatch.simulator.city import City
from schemas import commands as c
from schemas.common import LatLng

SITE_SPACING_M = 5_500.0
ALONE_WITHIN_M = 3_500.0  # a site's drivers are the only ones this near its pickup
BACKGROUND_CLEAR_M = 4_000.0
OFFER_TIMEOUT_S = 120.0
PING_EVERY_S, PHASES = 4.0, 40
KINDS = ("same", "cross")
OFFERED = "dispatch.Ride.Offered"
RECEIVED = "dispatch.Driver.OfferReceived"
ASKED = "dispatch.Ride.DriverAsked"


@dataclass
class Site:
    kind: str  # "same" or "cross"
    border: Border
    pickup: Place
    ride_shard: int
    drivers: list[tuple[uuid.UUID, Place]] = field(default_factory=list)


def build_sites(city: CityShards, per_site: int, rng: random.Random) -> list[Site]:
    """Border places at least SITE_SPACING_M apart, kinds alternating, each with
    ``per_site`` drivers; checked: no driver of another site within ALONE_WITHIN_M."""
    chosen: list[Border] = []
    for border in city.borders:
        if all(distance_m(border.edge, other.edge) >= SITE_SPACING_M for other in chosen):
            chosen.append(border)
    sites = []
    for i, border in enumerate(chosen):
        kind = KINDS[i % 2]
        pickup = city.near_border(border, border.inside, (0.4, 0.42), 50, rng)
        site = Site(kind, border, pickup, city.shard_for(pickup))
        owner = border.inside if kind == "same" else border.outside
        # the same distances from the pickup on either side: t 0.4 -/+ 0.15..0.5
        span = (-0.1, 0.25) if kind == "same" else (0.55, 0.9)
        while len(site.drivers) < per_site:
            place = city.near_border(border, owner, span, 300, rng)
            if distance_m(place, pickup) <= 1_500:
                site.drivers.append((new_id(owner), place))
        sites.append(site)
    for site in sites:
        for other in sites:
            if other is not site:
                near = min(distance_m(site.pickup, p) for _, p in other.drivers)
                if near < ALONE_WITHIN_M:
                    raise RuntimeError(f"sites too close: {near:.0f} m")
    return sites


def background(city: CityShards, sites: list[Site], count: int, rng: random.Random) -> list:
    """``count`` drivers at random places of the city, none within BACKGROUND_CLEAR_M of a
    pickup, each registered in the shard of its place."""
    square, out = City(), []
    while len(out) < count:
        place = square.uniform(rng)
        if all(distance_m(place, s.pickup) >= BACKGROUND_CLEAR_M for s in sites):
            out.append((new_id(city.shard_for(place)), place))
    return out


def register(bus: KafkaTransport, drivers: list, riders: list[uuid.UUID]) -> None:
    now, ids = datetime.now(UTC), []
    commands: list[c.Command] = []
    for i, (d, _) in enumerate(drivers):
        commands += [c.RegisterDriver(driver_id=d, name=f"d{i}"), c.GoOnline(driver_id=d)]
    commands += [c.RegisterRider(rider_id=r, name=f"r{i}") for i, r in enumerate(riders)]
    for command in commands:
        env = c.CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=now, command=command)
        bus.send_command(env)
        ids.append(env.command_id)
    bus.flush()
    for cid in ids:
        outcome = bus.wait_outcome(cid, 120)
        if outcome is None or not outcome.accepted:
            raise RuntimeError(f"registration failed: {outcome}")


class Reader:
    """Follows the events topic (read_committed) on a thread: when each ride's ask, offer
    and driver's offer were read back (perf_counter), and the offer's own time and driver."""

    def __init__(self, bootstrap: str, prefix: str, shards: int) -> None:
        self.consumer = new_consumer(bootstrap, group_id=None)
        tps = [TopicPartition(Topics(prefix).events, p) for p in range(shards)]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        for tp in tps:
            self.consumer.position(tp)  # resolved now, before any request
        self.seen: dict[str, dict[str, float]] = {ASKED: {}, OFFERED: {}, RECEIVED: {}}
        self.offered: dict[str, tuple[float, str]] = {}  # ride -> (event time, driver)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=20).values():
                at = time.perf_counter()
                for record in records:
                    for event in decode_events(record.value, record.headers):
                        if event.topic not in self.seen:
                            continue
                        if event.topic == RECEIVED:
                            ride = orjson.loads(event.state)["ride_id"]
                        else:
                            ride = event.originator_key
                        self.seen[event.topic].setdefault(ride, at)
                        if event.topic == OFFERED and ride not in self.offered:
                            state = orjson.loads(event.state)
                            stamp = datetime.fromisoformat(state["timestamp"]["_data_"])
                            self.offered[ride] = (stamp.timestamp(), state["driver_id"])
        self.consumer.close()


def stats(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50), 1),
        "p95_ms": round(percentile(ordered, 0.95), 1),
        "p99_ms": round(percentile(ordered, 0.99), 1),
        "mean_ms": round(statistics.fmean(ordered), 1),
    }


def run(args: argparse.Namespace, city: CityShards, seed: int, logs: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    requests = int(args.rate * args.seconds)
    sites = build_sites(city, 1, random.Random(seed))  # the places only, to count them
    per_kind = {k: sum(s.kind == k for s in sites) for k in KINDS}
    per_site = math.ceil(requests / 2 / min(per_kind.values()) * 1.2) + 4
    sites = build_sites(city, per_site, rng)
    extra = background(city, sites, args.background, rng)
    drivers = [d for s in sites for d in s.drivers] + extra
    prefix = f"bench-xoffers-{uuid.uuid4().hex[:6]}"
    settings = city.settings(args.bootstrap, prefix, offer_timeout_s=OFFER_TIMEOUT_S)
    create_topics(args.bootstrap, prefix, city.shards)
    files = [logs / f"{prefix}-worker-{i}.log" for i in range(args.workers)]
    procs = [start_worker(settings, log, f"bench-xoffers-{i}") for i, log in enumerate(files)]
    load_before = load_average()
    bus = KafkaTransport(args.bootstrap, prefix)
    bus.nearby = city.markets.nearby_shards  # as the API's transport
    try:
        placed = wait_placed(procs, files, city.shards)
        # the requests, planned: kinds alternate, sites of a kind in turn
        turns = {k: itertools.cycle([s for s in sites if s.kind == k]) for k in KINDS}
        plan: list[tuple[str, Site, uuid.UUID]] = []
        for i in range(requests):
            site = next(turns[KINDS[i % 2]])
            home = rng.randrange(city.shards) if args.riders_anywhere else site.ride_shard
            plan.append((site.kind, site, new_id(home)))
        register(bus, drivers, [rider for _, _, rider in plan])
        places = dict(drivers)
        ids = list(places)
        bus.send_pings([Ping(d, *places[d], time.time()) for d in ids])
        bus.flush()
        time.sleep(2.0)  # every shard's drivers told to the others (driver availability)
        reader = Reader(args.bootstrap, prefix, city.shards)
        sent_at: dict[str, float] = {}
        sent_wall: dict[str, float] = {}
        kind_of: dict[str, str] = {}
        interval, next_at, last_ping = 1.0 / args.rate, time.perf_counter(), 0.0
        for kind, site, rider in plan:
            pickup = jitter(site.pickup, 50, rng)
            ride = new_id(site.ride_shard)
            env = c.CommandEnvelope(
                command_id=str(uuid.uuid4()),
                issued_at=datetime.now(UTC),
                command=c.RequestRide(
                    ride_id=ride,
                    rider_id=rider,
                    pickup=LatLng(lat=pickup[0], lng=pickup[1]),
                    dropoff=LatLng(lat=pickup[0] + 0.01, lng=pickup[1]),
                ),
            )
            wait = next_at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            key = str(ride)
            kind_of[key] = kind
            sent_at[key], sent_wall[key] = time.perf_counter(), time.time()
            bus.send_command(env)
            bus.flush()
            next_at += interval
            if time.time() - last_ping > PING_EVERY_S / PHASES:
                phase = int(time.time() * PHASES / PING_EVERY_S) % PHASES
                bus.send_pings([Ping(d, *places[d], time.time()) for d in ids[phase::PHASES]])
                last_ping = time.time()
        deadline = time.monotonic() + 15
        while len(reader.seen[OFFERED]) < len(sent_at) and time.monotonic() < deadline:
            time.sleep(0.2)
        reader.stop.set()
        reader.thread.join(timeout=10)
        load_after = load_average()
        return figures(reader, sent_at, sent_wall, kind_of) | {
            "shards": city.shards,
            "workers": args.workers,
            "shards_per_worker": placed,
            "sites": {k: per_kind[k] for k in KINDS},
            "drivers_a_site": per_site,
            "background_drivers": len(extra),
            "riders": "anywhere" if args.riders_anywhere else "in the pickup's shard",
            "load_average_before": load_before,
            "load_average_after": load_after,
        }
    finally:
        bus.close()
        stop_all(procs)
        delete_topics(args.bootstrap, prefix)


def figures(
    reader: Reader, sent_at: dict[str, float], sent_wall: dict[str, float], kind_of: dict[str, str]
) -> dict[str, Any]:
    offered, received, asked = (reader.seen[t] for t in (OFFERED, RECEIVED, ASKED))
    by_kind: dict[str, dict[str, list[float]]] = {
        k: {"offered": [], "driver_offer": [], "asked": [], "decided": []} for k in KINDS
    }
    unlike_site, not_offered = 0, {k: 0 for k in KINDS}
    for ride, sent in sent_at.items():
        if ride not in offered:
            not_offered[kind_of[ride]] += 1
            continue
        stamp, driver = reader.offered[ride]
        kind = "cross" if shard_of(uuid.UUID(driver)) != shard_of(uuid.UUID(ride)) else "same"
        unlike_site += kind != kind_of[ride]
        lists = by_kind[kind]
        lists["offered"].append((offered[ride] - sent) * 1000)
        lists["decided"].append((stamp - sent_wall[ride]) * 1000)
        if ride in received:
            lists["driver_offer"].append((received[ride] - sent) * 1000)
        if ride in asked:
            lists["asked"].append((asked[ride] - sent) * 1000)
    out: dict[str, Any] = {"requests": len(sent_at)}
    for kind in KINDS:
        out[kind] = {name: stats(values) for name, values in by_kind[kind].items()}
    same, cross = out["same"]["offered"], out["cross"]["offered"]
    if same.get("count") and cross.get("count"):
        out["p99_ratio_cross_to_same"] = round(cross["p99_ms"] / same["p99_ms"], 2)
        out["p50_ratio_cross_to_same"] = round(cross["p50_ms"] / same["p50_ms"], 2)
    out["offered_unlike_their_site"] = unlike_site
    out["not_offered"] = not_offered
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median (and range) over the runs of each kind's offer percentiles and the ratio."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        for measure in ("offered", "driver_offer", "decided"):
            for q in ("p50_ms", "p95_ms", "p99_ms"):
                values = [r[kind][measure][q] for r in runs if q in r[kind][measure]]
                if values:
                    out[f"{kind}_{measure}_{q}"] = {
                        "median": statistics.median(values),
                        "range": [min(values), max(values)],
                    }
    ratios = [r["p99_ratio_cross_to_same"] for r in runs if "p99_ratio_cross_to_same" in r]
    out["p99_ratio_cross_to_same"] = {
        "median": statistics.median(ratios) if ratios else None,
        "runs": ratios,
    }
    out["target"] = "cross-shard request-to-offer p99 <= 2x the same-shard p99 (offered)"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--shards", type=int, choices=(2, 4), default=4)
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=40.0, help="requests a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--background", type=int, default=4_000, help="drivers never matched")
    parser.add_argument("--riders-anywhere", action="store_true")
    parser.add_argument("--no-calibrate", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": machine(not args.no_calibrate)}
    result["measured"] = (
        "produced (perf_counter just before the send, flushed at once) -> Ride.Offered read "
        "back from the events topic by a read_committed consumer in this process"
    )
    city = CityShards(args.shards)
    logs = Path(tempfile.mkdtemp(prefix="bench-cross-offers-"))
    runs = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs}...", file=sys.stderr)
        found = run(args, city, args.seed + i, logs)
        print(json.dumps(found), file=sys.stderr)
        runs.append(found)
    result["runs"] = runs
    result["summary"] = summary(runs)
    result["worker_logs"] = str(logs)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
