"""Run a simulation against a Kafka deployment: commands and pings go to the topics, the
report is built from the outcomes and the committed events read back.

Workers run with ``--clock stream`` so simulated time flows through the records: a worker's
clock is the latest time its shard has seen. ``spawn_workers`` starts them as separate
processes (``dispatch worker``) and stops them, by their own pids, at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dispatch.adapters.kafka.config import connection_of
from dispatch.adapters.kafka.eventstore.codec import notification_id
from dispatch.adapters.kafka.follower import Follower
from dispatch.adapters.kafka.logsource import decode_records
from dispatch.adapters.kafka.processes import start_worker, stop_worker
from dispatch.adapters.kafka.topics import Topics, create_topics
from dispatch.adapters.kafka.transport import KafkaTransport
from dispatch.bootstrap import build_geofences, build_markets, build_personal
from dispatch.pricing.rules import fare_book, fares_of
from dispatch.privacy import KeyWrapError, LazyKeyStore, PersonalData, as_is
from dispatch.settings import Settings
from dispatch.simulator.clock import SimClock
from dispatch.simulator.embedded import router_of
from dispatch.simulator.results import Request
from dispatch.simulator.runner import SimConfig, Simulation
from schemas.commands import Outcome


def _hint_opener(settings: Settings) -> PersonalData:
    """The subject keys a driver following its hints reads their centre with (sealed under
    the driver's key: docs/PRIVACY.md), read now: a load generator that may not read the
    keys topic is refused here, with the reason, not at its first hint."""
    personal = build_personal(settings)
    try:
        if isinstance(personal.keys, LazyKeyStore):
            personal.keys.open_now()
    except KeyWrapError as error:  # the topic was read; its keys are wrapped under a KEK
        raise HintsUnreadable(
            "--hints follow opens each hint's cell, sealed under its driver's key, with the "
            f"subject keys, which are wrapped under a key-encryption key ({error}): set "
            "DISPATCH_KEY_ENCRYPTION_KEYS for this process (docs/PRIVACY.md), or use "
            "--hints ignore"
        ) from error
    except Exception as error:
        raise HintsUnreadable(
            "--hints follow reads each hint's cell, sealed under its driver's key, from the "
            f"subject-keys topic, which this process could not read ({error}): give its "
            "principal read on that topic (docs/SECURITY.md), or use --hints ignore"
        ) from error
    return personal


class HintsUnreadable(Exception):
    """``--hints follow`` on Kafka by a process that cannot read the subject keys."""


@contextmanager
def spawn_workers(settings: Settings, count: int, log_dir: Path) -> Iterator[list[int]]:
    """Start ``count`` worker processes (stream clock); stop them by pid afterwards."""
    procs = [
        start_worker(settings, log_dir / f"worker-{i}.log", f"sim-worker-{i}", "stream")
        for i in range(count)
    ]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            stop_worker(p)


class EventFollower:
    """Reads the committed events of every shard and hands them to the simulation."""

    def __init__(self, settings: Settings, on_event: Callable[..., None]) -> None:
        assert settings.kafka_bootstrap is not None
        topic = Topics(settings.topic_prefix).events
        self.follower = Follower(connection_of(settings), topic, range(settings.shards))
        self.follower.seek_to_end()
        # Notification ids seen per shard: everything before the end offset (its ids are
        # all below the first id of the record at the end).
        self.seen = {
            s: notification_id(self.follower.position(s), 0) - 1 for s in range(settings.shards)
        }
        self.on_event = on_event

    def drain(self, until: dict[int, int], timeout_s: float) -> None:
        """Read until every shard's position reaches ``until`` (notification ids)."""
        deadline = time.monotonic() + timeout_s
        while True:
            batches = self.follower.poll(timeout_ms=20)
            for shard, records in batches.items():
                for record in records:
                    for event in decode_records(record.value, record.offset, shard):
                        self.on_event(event)
                        self.seen[shard] = event.position
            behind = any(self.seen.get(s, 0) < pos for s, pos in until.items())
            if (not behind and not batches) or time.monotonic() > deadline:
                return

    def close(self) -> None:
        self.follower.close()


def run_on_kafka(
    config: SimConfig,
    settings: Settings,
    workers: int,
    log_dir: Path,
    progress: Callable[[float], None] | None = None,
    on_start: Callable[[list[int]], None] | None = None,
    on_tick: Callable[[float], None] | None = None,
    demand: Sequence[Request] | None = None,
) -> Simulation:
    """Run the simulation through Kafka; ``on_start`` gets the worker pids (for chaos
    tests), ``on_tick`` the simulated time after each tick."""
    assert settings.kafka_bootstrap is not None
    if workers > 0:  # its own deployment; with workers=0 one is running, topics and all
        # (on a secured cluster the load generator's principal may not create topics)
        create_topics(connection_of(settings), settings.topic_prefix, settings.shards)
    transport = KafkaTransport(connection_of(settings), settings.topic_prefix)
    markets = build_markets(settings)
    if settings.shards > 1:  # each shard sees the drivers near it, whoever owns them
        transport.nearby = markets.nearby_shards
    clock = SimClock(start=float(int(time.time())))
    hints = _hint_opener(settings) if config.hints == "follow" else None
    with spawn_workers(settings, workers, log_dir) as pids:
        if on_start is not None:
            on_start(pids)
        follower: EventFollower | None = None

        def step(sent: list[str]) -> list[Outcome]:
            transport.flush()
            outcomes = []
            for command_id in sent:
                outcome = transport.wait_outcome(command_id, 60.0)
                if outcome is None:
                    raise TimeoutError(
                        f"no outcome for {command_id} within 60 s: are the workers running?"
                    )
                outcomes.append(outcome)
            until: dict[int, int] = {}
            for o in outcomes:
                if o.position is not None:
                    until[o.shard] = max(until.get(o.shard, 0), o.position)
            assert follower is not None
            follower.drain(until, 30.0)
            return outcomes

        config = SimConfig(**{**config.__dict__, "id_salt": f"-{int(clock.now)}"})
        sim = Simulation(
            config,
            transport,
            step,
            clock,
            markets,
            demand,
            router_of(config, settings),
            fare_book(fares_of(settings)),
            settings.catalog,
            build_geofences(settings),
            open_personal=hints.open if hints is not None else as_is,
        )
        transport.serving = sim.serving.get  # a driver handed off: pings where it is served
        follower = EventFollower(settings, sim.on_event)
        try:
            sim.run(progress, on_tick)
            return sim
        finally:
            follower.close()
            transport.close()
            if hints is not None:
                hints.keys.close()
