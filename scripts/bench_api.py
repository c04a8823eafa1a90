"""Benchmark the API's location queries and ping ingest, beside Redis GEO in the same run.

    .venv/bin/python scripts/bench_api.py [--drivers 50000] [--rate 500] [--seconds 10] [--json]

Drivers are registered and put online through the real embedded engine, then pinged to
uniform points in a 30 x 30 km square around (37.77, -122.42). Figures:
  (a) nearest 10 available drivers within 2 km from the locations view, in process;
  (c) Redis ``GEOSEARCH ... BYRADIUS 2 km COUNT 10 ASC`` over the same points, one at a
      time and 16 deep, when ``redis-server`` is installed (started on a free port without
      persistence, stopped by its pid; redis-py if installed, else a minimal RESP client).
      (a) and (c) run side by side: a first pass of each (ring plans built, Redis warmed),
      then ``--rounds`` rounds of one pass each, interleaved; ratios are per round, and
      every figure is the median over the rounds;
  (b) the same query through ``GET /drivers/nearby`` over HTTP (uvicorn on 127.0.0.1) at a
      fixed request rate, from a separate client process; latency counted from each
      request's planned send time, so a slow server is not hidden by a slowed client; the
      client's own pauses beside it (how late it sent, how late its event loop woke) and
      the server's (its request histogram, its event loop's lag, its thread-pool queue),
      so a slow client is not mistaken for a slow server; and, queries alone, the CPU the
      server's event-loop thread spent per query (``server_loop_cpu_us_per_request``,
      from /proc, Linux only). Two mixes: the queries alone
      (``b_http``), and the queries while another client process sends ``--ping-rate``
      pings/s in batches (``b_http_with_pings``). ``--churn N``: N drivers a second go
      offline and online again meanwhile (events the views keep); ``--kept-first``: the
      views are kept once before the runs, so the saves in them keep changes only, as in a
      serving process after its first save;
  (d) ping ingest through ``POST /drivers/{id}/locations``: pings/s from the first request
      to the last response (a 202 means the pings are in this process's location view).
Nothing about time is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.api.auth import mint_access_token, mint_operator_token
from dispatch.api.context import ApiOptions
from dispatch.api.serve import server_config, switch_gil_often
from dispatch.api.settings import ApiLimits
from dispatch.bootstrap import build_runtime
from dispatch.domain.ids import new_id
from dispatch.messages import Ping
from dispatch.runtime import Runtime
from dispatch.settings import Settings
from schemas.commands import (
    CommandEnvelope,
    GoOffline,
    GoOnline,
    RegisterDriver,
    RegisterRider,
)

CENTRE = (37.77, -122.42)
HALF_SIDE_M = 15_000.0
M_PER_DEG_LAT = math.pi * 6_371_008.8 / 180.0
RADIUS_M, K = 2_000.0, 10
# One client sends every query with one token: the per-caller rate limit would measure
# itself, not the server. Every other limit stays as `dispatch serve` has it.
UNLIMITED = ApiLimits.model_validate(
    {"rate_limit_requests_per_s": 0, "rate_limit_registrations_per_min": 0}
)
SECRET = "TA7WNDp_-7cQ6RJIKFM1VGyOdbaf_9233w8m_xYTx-SBXq4C"  # random: production refuses weak ones


def uniform_points(rng: random.Random, n: int, half_side_m: float) -> list[tuple[float, float]]:
    m_per_deg_lng = M_PER_DEG_LAT * math.cos(math.radians(CENTRE[0]))
    return [
        (
            CENTRE[0] + rng.uniform(-half_side_m, half_side_m) / M_PER_DEG_LAT,
            CENTRE[1] + rng.uniform(-half_side_m, half_side_m) / m_per_deg_lng,
        )
        for _ in range(n)
    ]


def seed(runtime: Runtime, points: list[tuple[float, float]]) -> tuple[list[uuid.UUID], float]:
    """Register every driver, put them online (real commands), ping each to its point."""
    started = time.perf_counter()
    ids = [new_id(0) for _ in points]
    now = datetime.now(UTC)
    for make in (
        lambda d: RegisterDriver(driver_id=d, name="bench"),
        lambda d: GoOnline(driver_id=d),
    ):
        for d in ids[:-1]:
            envelope = CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=now, command=make(d))
            runtime.transport.send_command(envelope)
        last = CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=now, command=make(ids[-1]))
        outcome = runtime.send(last, 600)
        assert outcome is not None and outcome.accepted, outcome
        assert outcome.position is not None
        assert runtime.wait_for(0, outcome.position, 120), "views did not catch up"
    at = time.time()
    pings = [Ping(d, lat, lng, at) for d, (lat, lng) in zip(ids, points, strict=True)]
    for i in range(0, len(pings), 5_000):
        runtime.send_pings(pings[i : i + 5_000])
    assert len(runtime.views.locations.index) == len(ids)
    return ids, time.perf_counter() - started


class Churn:
    """Drivers going offline and online again while the HTTP runs go on (real commands
    through the engine, each driver pinged again at its point once back): events that
    change the views, so that their saves have something to keep. ``rate`` drivers a
    second, in batches every 100 ms; 0: none."""

    def __init__(
        self,
        runtime: Runtime,
        ids: list[uuid.UUID],
        points: list[tuple[float, float]],
        rate: float,
        seed: int,
    ) -> None:
        self.runtime, self.ids, self.points, self.rate = runtime, ids, points, rate
        self.rng = random.Random(seed)
        self.drivers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def __enter__(self) -> Churn:
        if self.rate > 0:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        owed, back = 0.0, []  # back: last batch's drivers, pinged once their events folded
        while not self._stop.wait(0.1):
            at = time.time()
            self.runtime.send_pings([Ping(self.ids[i], *self.points[i], at) for i in back])
            owed += self.rate / 10
            back = self.rng.sample(range(len(self.ids)), int(owed))
            owed -= len(back)
            now = datetime.now(UTC)
            for make in (GoOffline, GoOnline):
                for i in back:
                    command = make(driver_id=self.ids[i])
                    envelope = CommandEnvelope(
                        command_id=str(uuid.uuid4()), issued_at=now, command=command
                    )
                    self.runtime.transport.send_command(envelope)
            self.drivers += len(back)


def register_rider(runtime: Runtime) -> uuid.UUID:
    """The rider whose app asks for nearby drivers."""
    rider = new_id(0)
    command = RegisterRider(rider_id=rider, name="bench")
    envelope = CommandEnvelope(command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC),
                               command=command)  # fmt: skip
    outcome = runtime.send(envelope, 60)
    assert outcome is not None and outcome.accepted, outcome
    assert outcome.position is not None and runtime.wait_for(0, outcome.position, 60)
    return rider


def in_process_pass(runtime: Runtime, queries: list[tuple[float, float]]) -> tuple[float, int]:
    """One pass over the points through the locations view: (queries/s, drivers found)."""
    views, now = runtime.views, time.time()
    found = 0
    started = time.perf_counter()
    for lat, lng in queries:
        with views.lock:
            found += len(views.locations.nearest(lat, lng, K, RADIUS_M, now))
    return len(queries) / (time.perf_counter() - started), found


# -- HTTP ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """uvicorn in a thread of this process (the runtime's process), stopped on exit."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        config = server_config(app, UNLIMITED, "127.0.0.1", port, "warning")  # as served
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def loop_cpu_s(self) -> float | None:
        """CPU seconds the event loop's thread has used so far (Linux: /proc; else None)."""
        try:
            stat = Path(f"/proc/self/task/{self.thread.native_id}/stat").read_text()
        except OSError:
            return None
        fields = stat.rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _fixed_rate(base: str, token: str, queries: list[Any], rate: float, n: int) -> Any:
    """Request i is due at t0 + i / rate and its latency counts from then. A fixed set of
    connections takes the requests in order, a late one still timed from when it was due.
    The client is aiohttp (its HTTP parser is compiled): with httpx, the client's own CPU
    time put up to 70 ms on the p99 of a server that answered within 2.5 ms
    (docs/BENCHMARKS.md, "The API's tail")."""
    import aiohttp

    connections = 32
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    send_late: list[float] = []  # the client's own delay: planned send to actual send
    statuses: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    todo = iter(range(n))
    session = aiohttp.ClientSession(
        base_url=base, connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=10),
    )  # fmt: skip

    async def opened() -> None:
        async with session.get("/livez") as r:
            await r.read()

    await asyncio.gather(*(opened() for _ in range(connections)))  # before the clock starts
    t0 = loop.time() + 0.2

    async def connection() -> None:
        for i in todo:
            planned = t0 + i / rate
            await asyncio.sleep(max(0.0, planned - loop.time()))
            send_late.append(loop.time() - planned)
            lat, lng = queries[i % len(queries)]
            params = {"lat": lat, "lng": lng, "radius_m": RADIUS_M, "limit": K}
            try:
                async with session.get("/drivers/nearby", params=params, headers=headers) as r:
                    await r.read()
                    statuses[r.status] += 1
            except (aiohttp.ClientError, TimeoutError) as e:
                statuses[-1] += 1
                print("request failed:", repr(e), file=sys.stderr)
            latencies.append(loop.time() - planned)

    lags: list[float] = []
    done = asyncio.Event()
    monitor = asyncio.create_task(_loop_lag(lags, done))
    try:
        await asyncio.gather(*(connection() for _ in range(connections)))
        elapsed = loop.time() - t0
    finally:
        done.set()
        await monitor
        await session.close()
    return latencies, dict(statuses), elapsed, send_late, lags


async def _loop_lag(lags: list[float], done: asyncio.Event, every_s: float = 0.005) -> None:
    """The client's own pauses: how late each 5 ms sleep of its event loop wakes (its
    GC is off; what is left is the OS, the other processes and the client's own work)."""
    loop = asyncio.get_running_loop()
    while not done.is_set():
        asked = loop.time()
        await asyncio.sleep(every_s)
        lags.append(max(0.0, loop.time() - asked - every_s))


async def _ingest(
    base: str, batches: list[tuple[str, str, list[dict[str, Any]]]], conc: int
) -> Any:
    import httpx

    statuses: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    todo = iter(batches)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.get("/livez")
        started = loop.time()

        async def worker() -> None:
            for driver_id, token, pings in todo:
                r = await client.post(
                    f"/drivers/{driver_id}/locations",
                    json={"pings": pings},
                    headers={"Authorization": f"Bearer {token}"},
                )
                statuses[r.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = loop.time() - started
    return dict(statuses), elapsed


def client_process(kind: str, args: tuple[Any, ...], out: Any) -> None:
    """Runs in a separate (spawned) process so the client does not share the server's GIL.
    The client's own garbage collector is off while it runs: its pauses would be counted
    as the server's latency."""
    gc.collect()
    gc.disable()
    if kind == "rate":
        out.put(asyncio.run(_fixed_rate(*args)))
    elif kind == "pinger":
        out.put(asyncio.run(_steady_pings(*args)))
    else:
        out.put(asyncio.run(_ingest(*args)))


def in_client_process(kind: str, *args: Any) -> Any:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=client_process, args=(kind, args, out))
    proc.start()
    result = out.get(timeout=300)
    proc.join(timeout=30)
    return result


def start_client_process(kind: str, *args: Any) -> tuple[Any, Any]:
    """A client process running beside the caller; ``(process, queue)``: its result comes
    on the queue."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=client_process, args=(kind, args, out))
    proc.start()
    return proc, out


async def _steady_pings(
    base: str, work: list[tuple[str, str, list[dict[str, Any]]]], per_s: float, seconds: float
) -> Any:
    """Batches of pings at a steady rate (``per_s`` batches a second, each due at its
    time, 8 connections) for ``seconds``: the load beside the queries (aiohttp, as the
    queries' client)."""
    import aiohttp

    statuses: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    n = int(per_s * seconds)
    todo = iter(range(n))
    session = aiohttp.ClientSession(
        base_url=base, connector=aiohttp.TCPConnector(limit=8),
        timeout=aiohttp.ClientTimeout(total=30),
    )  # fmt: skip
    t0 = loop.time()
    sent = 0

    async def connection() -> None:
        nonlocal sent
        for i in todo:
            await asyncio.sleep(max(0.0, t0 + i / per_s - loop.time()))
            driver_id, token, pings = work[i % len(work)]
            async with session.post(f"/drivers/{driver_id}/locations", json={"pings": pings},
                                    headers={"Authorization": f"Bearer {token}"}) as r:  # fmt: skip
                await r.read()
                statuses[r.status] += 1
            sent += len(pings)

    try:
        await asyncio.gather(*(connection() for _ in range(8)))
        elapsed = loop.time() - t0
    finally:
        await session.close()
    return dict(statuses), sent, elapsed


def http_nearby(
    base: str,
    tokens: tuple[str, str],
    queries: list[Any],
    rate: float,
    seconds: float,
    pinger: Any = None,
) -> Any:
    """The queries at a fixed rate from a client process, as a rider's app asks them (an
    operator's every read is recorded in the read audit first: not this benchmark); with
    ``pinger`` (ping batches, batches/s), a second client process sends pings meanwhile.
    ``tokens``: the rider's, and an operator's for /metrics."""
    token, operator = tokens
    n = int(rate * seconds)
    before = server_histograms(base, operator)
    beside = None
    if pinger is not None:
        work, per_s = pinger
        beside = start_client_process("pinger", base, work, per_s, seconds + 0.5)
    latencies, statuses, elapsed, late, lags = in_client_process(
        "rate", base, token, queries, rate, n
    )
    out: dict[str, Any] = {
        "requests": n,
        "target_rate": rate,
        "achieved_rate": n / elapsed,
        "p50_ms": 1e3 * percentile(latencies, 0.50),
        "p99_ms": 1e3 * percentile(latencies, 0.99),
        "max_ms": 1e3 * max(latencies),
        "statuses": statuses,
        # the client's own pauses: a late send is counted in the latency, not the server's
        "client_send_late_p99_ms": 1e3 * percentile(late, 0.99),
        "client_send_late_max_ms": 1e3 * max(late),
        "client_loop_lag_p99_ms": 1e3 * percentile(lags, 0.99) if lags else None,
        "client_loop_lag_max_ms": 1e3 * max(lags) if lags else None,
    }
    if beside is not None:
        proc, queue = beside
        ping_statuses, pings, ping_elapsed = queue.get(timeout=300)
        proc.join(timeout=30)
        out["pings_per_s"] = pings / ping_elapsed
        out["ping_statuses"] = ping_statuses
    after = server_histograms(base, operator)
    bounds = {"request": "server_p99_at_most_ms", "lag": "server_loop_lag_p99_at_most_ms",
              "queue": "server_threadpool_queue_p99_at_most_ms"}  # fmt: skip
    for name, key in bounds.items():
        out[key] = p99_bound_ms(before[name], after[name])
    return out


def server_histograms(base: str, token: str) -> dict[str, dict[float, float]]:
    """The server's own histograms from /metrics, cumulative bucket counts by upper bound:
    ``request`` (GET /drivers/nearby answered 200: time inside the app), ``lag`` (its event
    loop's lateness) and ``queue`` (waits for its thread pool)."""
    import httpx

    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}).text
    wanted = {
        "request": ("dispatch_api_request_duration_seconds_bucket", 'route="/drivers/nearby"'),
        "lag": ("dispatch_api_event_loop_lag_seconds_bucket", ""),
        "queue": ("dispatch_api_threadpool_queue_seconds_bucket", ""),
    }
    out: dict[str, dict[float, float]] = {k: {} for k in wanted}
    for line in text.splitlines():
        for key, (prefix, must) in wanted.items():
            if (
                line.startswith(prefix)
                and must in line
                and (key != "request" or 'status="200"' in line)
            ):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                bound = math.inf if le == "+Inf" else float(le)
                out[key][bound] = out[key].get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def p99_bound_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The bucket holding the 99th percentile of what was observed between two reads."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not delta or delta[-1][1] <= 0:
        return None
    total = delta[-1][1]
    return next(1e3 * le for le, count in delta if count >= 0.99 * total)


def ping_work(ids: list[uuid.UUID], batch: int, batches: int) -> list[tuple[str, str, list[Any]]]:
    """Ping batches for the second mix: each of another driver (its token), ``batch``
    pings a second apart ending now, to uniform points."""
    auth = AuthSettings(secret=SecretStr(SECRET))
    rng = random.Random(7)
    now = time.time()
    work = []
    for i in range(batches):
        driver_id = str(ids[(len(ids) - 1 - i) % len(ids)])  # from the end: not the ingest's
        pings = [
            {"lat": lat, "lng": lng, "at": datetime.fromtimestamp(now - batch + j, UTC).isoformat()}
            for j, (lat, lng) in enumerate(uniform_points(rng, batch, HALF_SIDE_M))
        ]
        work.append((driver_id, mint_access_token(auth, driver_id, "driver"), pings))
    return work


def ingest(runtime: Runtime, base: str, ids: list[uuid.UUID], batch: int, batches: int) -> Any:
    auth = AuthSettings(secret=SecretStr(SECRET))
    rng = random.Random(5)
    now = time.time()
    work, last = [], {}
    for i in range(batches):
        driver_id = str(ids[i % len(ids)])
        token = mint_access_token(auth, driver_id, "driver")
        points = uniform_points(rng, batch, HALF_SIDE_M)
        at = [now - batch + j + i * 1e-3 for j in range(batch)]
        pings = [
            {"lat": lat, "lng": lng, "at": datetime.fromtimestamp(t, UTC).isoformat()}
            for (lat, lng), t in zip(points, at, strict=True)
        ]
        work.append((driver_id, token, pings))
        last[driver_id] = points[-1]
    statuses, elapsed = in_client_process("ingest", base, work, 4)
    landed = sum(
        1
        for driver_id, (lat, lng) in last.items()
        if runtime.views.locations.positions[driver_id][:2] == (lat, lng)
    )
    return {
        "pings": batch * batches,
        "batch": batch,
        "pings_per_s": batch * batches / elapsed,
        "batches_per_s": batches / elapsed,
        "statuses": statuses,
        "last_ping_in_view": f"{landed}/{len(last)}",
    }


# -- Redis -----------------------------------------------------------------------------------
class Resp:
    """The few RESP2 calls the benchmark needs, for when redis-py is not installed."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    @staticmethod
    def encode(*parts: Any) -> bytes:
        out = [f"*{len(parts)}\r\n".encode()]
        for p in parts:
            raw = p if isinstance(p, bytes) else str(p).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
        return b"".join(out)

    def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        self.sock.sendall(b"".join(self.encode(*c) for c in commands))
        return [self.read() for _ in commands]

    def read(self) -> Any:
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.file.read(size + 2)[:-2]
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")

    def close(self) -> None:
        self.sock.close()


class RedisPy:
    """The same calls through redis-py, when it is installed."""

    def __init__(self, port: int) -> None:
        import redis  # type: ignore[import-not-found, unused-ignore]

        self.client = redis.Redis(host="127.0.0.1", port=port)

    def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        result: list[Any] = pipe.execute()
        return result

    def close(self) -> None:
        self.client.close()


class RedisGeo:
    """A private redis-server (no persistence, 127.0.0.1, stopped by its pid) holding the
    same drivers, answering GEOSEARCH BYRADIUS 2 km COUNT 10 ASC."""

    def __init__(self, binary: str, points: list[tuple[float, float]]) -> None:
        use_redis_py = importlib.util.find_spec("redis") is not None
        self.client_name = "redis-py" if use_redis_py else "built-in RESP client"
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no"]
        self.server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.client = _connect(port, use_redis_py)
            for i in range(0, len(points), 1_000):
                flat: list[Any] = ["GEOADD", "drivers"]
                for j, (lat, lng) in enumerate(points[i : i + 1_000]):
                    flat += [lng, lat, f"d{i + j}"]
                self.client.pipeline([tuple(flat)])
        except BaseException:
            self.close()
            raise

    @staticmethod
    def query(lat: float, lng: float) -> tuple[Any, ...]:
        return (
            *("GEOSEARCH", "drivers", "FROMLONLAT", lng, lat, "BYRADIUS", RADIUS_M, "m"),
            *("COUNT", K, "ASC", "WITHDIST"),
        )

    def round_trip_pass(self, queries: list[tuple[float, float]]) -> tuple[float, int]:
        started = time.perf_counter()
        found = sum(len(self.client.pipeline([self.query(*q)])[0]) for q in queries)
        return len(queries) / (time.perf_counter() - started), found

    def pipelined_pass(self, queries: list[tuple[float, float]], depth: int = 16) -> float:
        started = time.perf_counter()
        for i in range(0, len(queries), depth):
            self.client.pipeline([self.query(*q) for q in queries[i : i + depth]])
        return len(queries) / (time.perf_counter() - started)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        self.server.terminate()
        self.server.wait(timeout=10)


def side_by_side(
    runtime: Runtime, points: list[tuple[float, float]], queries: list[Any], rounds: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """In-process and Redis passes over the same points, interleaved round by round, so
    that a busy moment of the machine slows both; ratios are taken per round, then the
    median. The first pass of each (ring plans built, Redis warmed) is reported apart."""
    cold, found = in_process_pass(runtime, queries)
    ours: dict[str, Any] = {"first_pass_queries_per_s": cold, "mean_found": found / len(queries)}
    binary = shutil.which("redis-server")
    if binary is None:
        rates = [in_process_pass(runtime, queries)[0] for _ in range(rounds)]
        ours["queries_per_s"] = statistics.median(rates)
        return ours, {"skipped": "redis-server is not installed (apt-get install -y redis-server)"}
    redis = RedisGeo(binary, points)
    try:
        _, redis_found = redis.round_trip_pass(queries)
        rows = []
        for _ in range(rounds):
            mine = in_process_pass(runtime, queries)[0]
            rows.append((mine, redis.round_trip_pass(queries)[0], redis.pipelined_pass(queries)))
    finally:
        redis.close()
    ours["queries_per_s"] = statistics.median(r[0] for r in rows)
    theirs = {
        "client": redis.client_name,
        "queries_per_s_round_trip": statistics.median(r[1] for r in rows),
        "queries_per_s_pipelined_16": statistics.median(r[2] for r in rows),
        "mean_found": redis_found / len(queries),
        "ratio_round_trip": statistics.median(r[0] / r[1] for r in rows),
        "ratio_pipelined": statistics.median(r[0] / r[2] for r in rows),
        "ratio_round_trip_each_round": [round(r[0] / r[1], 1) for r in rows],
    }
    return ours, theirs


def _connect(port: int, use_redis_py: bool) -> Resp | RedisPy:
    deadline = time.monotonic() + 10
    while True:
        try:
            client: Resp | RedisPy = RedisPy(port) if use_redis_py else Resp(port)
            client.pipeline([("PING",)])
            return client
        except Exception:  # not listening yet (OSError, or redis-py's ConnectionError)
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)


# -- main ------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--drivers", type=int, default=50_000)
    p.add_argument("--queries", type=int, default=5_000, help="in-process and Redis queries")
    p.add_argument("--rounds", type=int, default=5, help="timed passes (median) after the first")
    p.add_argument("--rate", type=float, default=500.0, help="HTTP requests per second")
    p.add_argument("--seconds", type=float, default=10.0, help="HTTP run length")
    p.add_argument("--batch", type=int, default=500, help="pings per ingest request")
    p.add_argument("--batches", type=int, default=400, help="ingest requests")
    p.add_argument(
        "--ping-rate",
        type=float,
        default=10_000.0,
        help="pings/s sent beside the queries in the second mix (0: no second mix)",
    )
    p.add_argument("--ping-batch", type=int, default=50, help="pings per request in that mix")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--freeze", action="store_true", help="gc.freeze() once seeded")
    p.add_argument(
        "--churn",
        type=float,
        default=0.0,
        help="drivers a second going offline and online again during the HTTP runs (events "
        "the views keep; 0: none, the views change only by pings)",
    )
    p.add_argument(
        "--kept-first",
        action="store_true",
        help="keep the views once (whole, in the background) before the runs, as a serving "
        "process has after its first save or a warm start: later saves keep changes only",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args()

    rng = random.Random(a.seed)
    points = uniform_points(rng, a.drivers, HALF_SIDE_M)
    queries = uniform_points(rng, a.queries, HALF_SIDE_M - RADIUS_M)
    report: dict[str, Any] = {"drivers": a.drivers, "radius_m": RADIUS_M, "k": K}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as data_dir:
        settings = Settings(data_dir=Path(data_dir), shards=1)
        switch_gil_often(settings)  # as `dispatch serve` does
        runtime = build_runtime(settings)
        runtime.start()
        try:
            ids, seconds = seed(runtime, points)
            rider = register_rider(runtime)
            report["seed_s"] = seconds
            if a.freeze:  # what `dispatch serve` does once the views are warm
                gc.collect()
                gc.freeze()
            if a.kept_first:
                report["first_keeping_s"] = keep_first(runtime)
            report["a_in_process"], report["c_redis"] = side_by_side(
                runtime, points, queries, a.rounds
            )
            auth = AuthSettings(secret=SecretStr(SECRET))
            app = create_app(runtime, auth, ApiOptions(manage_runtime=False), UNLIMITED)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            operator = mint_operator_token(auth, "bench", "viewer")
            tokens = (mint_access_token(auth, str(rider), "rider"), operator)
            with Server(app, port) as server:
                with Churn(runtime, ids, points, a.churn, a.seed) as churn:
                    cpu = server.loop_cpu_s()
                    report["b_http"] = http_nearby(base, tokens, queries, a.rate, a.seconds)
                    report["b_http"]["server_loop_cpu_us_per_request"] = per_request_us(
                        cpu, server.loop_cpu_s(), report["b_http"]["requests"]
                    )
                    if a.ping_rate > 0:
                        work = ping_work(
                            ids, a.ping_batch, int(a.ping_rate / a.ping_batch * (a.seconds + 1))
                        )
                        report["b_http_with_pings"] = http_nearby(
                            base,
                            tokens,
                            queries,
                            a.rate,
                            a.seconds,
                            (work, a.ping_rate / a.ping_batch),
                        )
                        report["b_http_with_pings"]["target_pings_per_s"] = a.ping_rate
                report["churn"] = {"target_per_s": a.churn, "drivers": churn.drivers}
                report["d_ingest"] = ingest(runtime, base, ids, a.batch, a.batches)
        finally:
            runtime.stop()
    print(json.dumps(report, indent=2) if a.json else table(report))


def per_request_us(before: float | None, after: float | None, requests: int) -> float | None:
    """The event loop thread's CPU per request of a run (queries alone: nothing else runs
    on that thread but the metrics reads), in microseconds."""
    if before is None or after is None or requests == 0:
        return None
    return 1e6 * (after - before) / requests


def keep_first(runtime: Runtime, timeout_s: float = 120.0) -> float:
    """Ask the runner to keep the views now (their first keeping is whole) and wait until
    a keeping begun after the call is written; the seconds it took."""
    started = time.perf_counter()
    keeper = runtime.runner.keeper
    if keeper is None:
        raise SystemExit("this runtime keeps no views")
    before = runtime.views.kept_as  # (a keeping may have happened while seeding)
    keeper.save_soon()
    while runtime.views.kept_as in (None, before):
        if time.perf_counter() - started > timeout_s:
            raise SystemExit(f"the views were not kept within {timeout_s:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def http_rows(b: dict[str, Any]) -> list[tuple[str, str]]:
    """The server's own figures and the client's pauses of an HTTP run."""
    return [
        ("    server-side p99 (in the app, bucket)", f"<= {b['server_p99_at_most_ms']} ms"),
        ("    server event-loop lag p99 (bucket)", f"<= {b['server_loop_lag_p99_at_most_ms']} ms"),
        ("    server thread-pool queue p99 (bucket)",
         f"<= {b['server_threadpool_queue_p99_at_most_ms']} ms"),
        ("    client: sent late p99 / max",
         f"{b['client_send_late_p99_ms']:.2f} / {b['client_send_late_max_ms']:.1f} ms"),
        ("    client: event-loop lag p99 / max",
         f"{b['client_loop_lag_p99_ms']:.2f} / {b['client_loop_lag_max_ms']:.1f} ms"),
        ("    statuses", json.dumps(b["statuses"])),
    ]  # fmt: skip


def table(r: dict[str, Any]) -> str:
    a, b, c, d = r["a_in_process"], r["b_http"], r["c_redis"], r["d_ingest"]
    rows = [
        (
            "drivers (registered + online via the engine)",
            f"{r['drivers']:,} in {r['seed_s']:.1f} s",
        ),
        ("(a) in-process nearest 10 within 2 km", f"{a['queries_per_s']:,.0f} queries/s"),
        ("    first pass (ring plans built)", f"{a['first_pass_queries_per_s']:,.0f} queries/s"),
        ("    mean drivers found", f"{a['mean_found']:.2f}"),
        ("(b) HTTP GET /drivers/nearby, target rate", f"{b['target_rate']:.0f} req/s"),
        ("    achieved rate", f"{b['achieved_rate']:.0f} req/s"),
        (
            "    latency p50 / p99 / max",
            f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f} / {b['max_ms']:.1f} ms",
        ),
    ]
    rows += http_rows(b)
    if (cpu := b.get("server_loop_cpu_us_per_request")) is not None:
        rows.append(("    server event loop's CPU per request", f"{cpu:.0f} us"))
    if "b_http_with_pings" in r:
        w = r["b_http_with_pings"]
        rows += [
            ("(b2) the same while pings arrive", f"{w['target_pings_per_s']:,.0f} pings/s"),
            ("    pings achieved, statuses",
             f"{w['pings_per_s']:,.0f} pings/s, {json.dumps(w['ping_statuses'])}"),
            ("    latency p50 / p99 / max",
             f"{w['p50_ms']:.2f} / {w['p99_ms']:.2f} / {w['max_ms']:.1f} ms"),
        ]  # fmt: skip
        rows += http_rows(w)
    if "skipped" in c:
        rows.append(("(c) Redis GEOSEARCH", c["skipped"]))
    else:
        rows += [
            (
                "(c) Redis GEOSEARCH 2 km COUNT 10 ASC, round trip",
                f"{c['queries_per_s_round_trip']:,.0f} queries/s",
            ),
            ("    pipelined 16 deep", f"{c['queries_per_s_pipelined_16']:,.0f} queries/s"),
            ("    client", c["client"]),
            (
                "    ratio in-process / Redis pipelined (median per round)",
                f"{c['ratio_pipelined']:.1f}x",
            ),
            (
                "    ratio in-process / Redis round trip (median per round)",
                f"{c['ratio_round_trip']:.1f}x  (rounds: {c['ratio_round_trip_each_round']})",
            ),
        ]
    rows += [
        ("(d) ping ingest, POST /drivers/{id}/locations", f"{d['pings_per_s']:,.0f} pings/s"),
        ("    batches of", f"{d['batch']} pings, {d['batches_per_s']:.0f} batches/s"),
        (
            "    statuses; last ping of each driver in the view",
            f"{json.dumps(d['statuses'])}; {d['last_ping_in_view']}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


if __name__ == "__main__":
    main()
