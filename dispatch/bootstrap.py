"""The composition root: every entry point (API, worker, CLI, simulator, tests) calls this."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import h3
import orjson

from dispatch.adapters.crypto.aesgcm import AesGcmCipher
from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap
from dispatch.adapters.embedded.engine import EmbeddedEngine
from dispatch.adapters.embedded.transport import EmbeddedTransport
from dispatch.adapters.jwt.codec import PyJwtCodec
from dispatch.adapters.jwt.legacy import LegacyTokens
from dispatch.adapters.jwt.quotes import PyJwtQuotes
from dispatch.adapters.posix.forked import ForkedBackground
from dispatch.adapters.sqlite import checkpoints as sqlite_checkpoints
from dispatch.adapters.sqlite.checkpoints import CheckpointingRecorder
from dispatch.adapters.sqlite.datadir import (
    LogIntegrityError,
    naming,
    open_log,
    prepare_embedded,
    shard_path,
    write_manifest,
)
from dispatch.adapters.sqlite.keystore import (
    SqliteKeyStore,
    check_sealing,
    key_store_path,
    read_sealing,
)
from dispatch.adapters.sqlite.logsource import SqliteLogSource
from dispatch.adapters.sqlite.readaudit import SqliteReadAudit, read_audit_path, read_records
from dispatch.adapters.sqlite.ridearchive import SqliteRideArchive, ride_archive_path
from dispatch.adapters.sqlite.viewhistory import SqliteViewHistory, view_history_path
from dispatch.adapters.sqlite.viewstore import SqliteViewStore, view_store_path
from dispatch.checkpoints import CheckpointWriter
from dispatch.domain.geo import straight_line_pace
from dispatch.geofences import Geofences, places_of
from dispatch.log import LogSource
from dispatch.markets import MarketMap, handoffs
from dispatch.matching.eta import EtaProvider, StraightLineEta
from dispatch.matching.hints import HintConfig, Hints
from dispatch.matching.index import DriverIndex
from dispatch.matching.matcher import Matcher, MatcherConfig
from dispatch.matching.pooled import PoolMatching
from dispatch.matching.pooling.batch import PoolLimits
from dispatch.matching.scheduled import SchedulingConfig
from dispatch.matching.strategies import SearchLimits, make_strategy
from dispatch.ports import Tracer
from dispatch.pricing.desk import FareDesk, SurgeReading
from dispatch.pricing.rules import fare_book, fares_of
from dispatch.pricing.surge import SurgeCurve
from dispatch.pricing.tracker import SurgeConfig, SurgeTracker
from dispatch.pricing.trip import RoadTrip, StraightLineTrip, TripEstimator
from dispatch.privacy import KeyStore, KeyWrap, LazyKeyStore, NoWrap, Opener, PersonalData
from dispatch.read_audit import ReadAudit, ReadRecord
from dispatch.regions import REGION_RESOLUTION
from dispatch.roads.cache import fits, graph_path
from dispatch.roads.eta import RoadNetworkEta
from dispatch.roads.graph import RoadGraph, RoadGraphError, sha256_of
from dispatch.roads.paths import ShortestPaths
from dispatch.roads.routes import RoadRouter
from dispatch.runtime import Runtime
from dispatch.sealed_commands import CommandSealer
from dispatch.settings import Settings
from dispatch.shard.application import ShardApplication
from dispatch.shard.live import LiveAggregates
from dispatch.shard.personal import Sealer
from dispatch.shard.policy import Policy, RoadTrips, StopsCheck
from dispatch.shard.worker import Clock, ShardWorker
from dispatch.tokens import KeyRing, TokenCodec
from projections.background import Background, InlineBackground
from projections.base import Projection
from projections.history import ViewHistory
from projections.keeper import ViewKeeper
from projections.runner import ProjectionRunner
from projections.store import RideArchive, ViewStore
from projections.views import default_projections
from projections.warm import warm_views

if TYPE_CHECKING:  # the Kafka adapter is imported only when it is used
    from dispatch.adapters.kafka.eventstore.connection import Connection
    from dispatch.adapters.kafka.transport import KafkaTransport
    from dispatch.adapters.kafka.worker import KafkaWorker

log = logging.getLogger(__name__)


def sqlite_env(data_dir: Path, shard: int) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(shard_path(data_dir, shard)),
        "APPLICATION_RECORDER_TOPIC": sqlite_checkpoints.TOPIC,
    }


def _connection(settings: Settings) -> Connection:
    """How this process reaches the brokers (kafka-python is imported only on Kafka)."""
    from dispatch.adapters.kafka.config import connection_of

    return connection_of(settings)


def kafka_env(connection: Connection, prefix: str, shard: int) -> dict[str, str]:
    """The eventsourcing environment of one shard on the Kafka persistence module (the
    connection's security in its ``KAFKA_SECURITY_*``, ``KAFKA_SASL_*`` keys)."""
    from dispatch.adapters.kafka.eventstore.connection import KafkaConnection, servers_of

    env = {
        "PERSISTENCE_MODULE": "dispatch.adapters.kafka.eventstore",
        "KAFKA_BOOTSTRAP_SERVERS": servers_of(connection),
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_SHARD": str(shard),
    }
    if isinstance(connection, KafkaConnection):
        env |= {
            "KAFKA_SECURITY_PROTOCOL": connection.security_protocol,
            "KAFKA_SASL_MECHANISM": connection.sasl_mechanism,
            "KAFKA_SASL_USERNAME": connection.username or "",
            "KAFKA_SASL_PASSWORD": connection.password or "",
            "KAFKA_SSL_CAFILE": str(connection.ssl_cafile or ""),
        }
    return env


def build_application(
    settings: Settings,
    shard: int,
    extra_env: Mapping[str, str] | None = None,
    sealer: Sealer | None = None,
) -> ShardApplication:
    """The shard's application on SQLite (embedded) or on the Kafka module; ``extra_env``
    adds to the persistence module's environment (a restore from a checkpoint). With a
    ``sealer`` it stores personal fields sealed and may erase (docs/PRIVACY.md)."""
    if settings.embedded:
        env = sqlite_env(settings.data_dir, shard)
    else:
        assert settings.kafka_bootstrap is not None
        env = kafka_env(_connection(settings), settings.topic_prefix, shard)
    env.update(extra_env or {})
    policy = Policy(
        settings.max_wait_s,
        settings.idempotency_window_s,
        settings.offer_timeout_s,
        settings.road_factor,
        settings.speed_kmh,
        erasable=sealer is not None,
        catalog=settings.catalog,
        road_trips=build_road_trips(settings),
        check_stops=_stops_check(settings),
        scheduling=settings.scheduling,
        pool=settings.pool_bounds,
    )
    return ShardApplication(shard, env=env, policy=policy, sealer=sealer)


def _stops_check(settings: Settings) -> StopsCheck | None:
    """The service areas' check of a ride's pickup and drop-off, if any market has one."""
    if not any(market.service_area is not None for market in settings.markets):
        return None
    return build_markets(settings).check_stops


def build_road_trips(settings: Settings) -> RoadTrips | None:
    """How a shard routes the trip a completed ride drove: over the road network when one
    is set (the quotes' estimate; docs/MARKETPLACE.md, "The trip driven"), else None."""
    if settings.road_network is None:
        return None
    graph = road_graph(settings.road_network.resolve())
    return _road_trips(graph, settings.road_factor, settings.speed_kmh)


@functools.cache
def _road_trips(graph: RoadGraph, road_factor: float, speed_kmh: float) -> RoadTrips:
    """One per process and graph: every shard shares its router."""
    straight_eta = StraightLineEta(road_factor, speed_kmh)
    router = RoadRouter(graph, road_paths(graph), straight_eta)
    estimator = RoadTrip(router, StraightLineTrip(road_factor, speed_kmh))
    return RoadTrips(estimator, graph_identity(graph))


def graph_identity(graph: RoadGraph) -> str:
    """What names a road graph in the log: its extract's file name and digest, and its
    speed table's version."""
    digest = graph.source_sha256[:16] or "unknown"
    return f"{graph.source or 'a built graph'} sha256:{digest} speeds v{graph.speeds_version}"


def build_sealer(settings: Settings) -> Sealer | None:
    """What seals the personal fields an embedded shard stores (docs/PRIVACY.md), under
    the keys of ``subject-keys.sqlite``; None on Kafka, whose workers get theirs from
    ``build_kafka_worker`` (the key store their batches join)."""
    return Sealer(build_personal(settings)) if settings.embedded else None


def build_eta(settings: Settings) -> EtaProvider:
    """The pickup-ETA provider: routed over the road network when one is set, else (and
    for points off the network) the straight-line estimate."""
    if settings.road_network is None:
        return StraightLineEta(settings.road_factor, settings.speed_kmh)
    graph = road_graph(settings.road_network.resolve())
    return _road_eta(graph, settings.max_pickup_eta_s, settings.road_factor, settings.speed_kmh)


@functools.cache
def _road_eta(
    graph: RoadGraph, max_eta_s: float, road_factor: float, speed_kmh: float
) -> RoadNetworkEta:
    """One per process and graph: every shard's matcher shares its search structures."""
    straight = StraightLineEta(road_factor, speed_kmh)
    eta = RoadNetworkEta(graph, max_eta_s, straight, paths=road_paths(graph))
    log.info("pickup ETAs routed over the road graph of %s: %d nodes, %d edges",
             graph.source or "a built graph", graph.nodes, graph.edges)  # fmt: skip
    return eta


@functools.cache
def road_paths(graph: RoadGraph) -> ShortestPaths:
    """The fastest-path search over ``graph`` (networkit's, chosen by
    ``scripts/bench_road_eta.py``), one per process and graph."""
    from dispatch.adapters.networkit.paths import NetworkitPaths

    return NetworkitPaths(graph)


def build_router(settings: Settings) -> RoadRouter | None:
    """Routes over the configured road network for simulated drivers (None: no network,
    drivers go in straight lines)."""
    if settings.road_network is None:
        return None
    graph = road_graph(settings.road_network.resolve())
    straight = StraightLineEta(settings.road_factor, settings.speed_kmh)
    return RoadRouter(graph, road_paths(graph), straight)


@functools.cache
def road_graph(path: Path, progress: Callable[[str], None] | None = None) -> RoadGraph:
    """The road graph at ``path`` (a built ``.roads.npz``), or of the extract at ``path``
    (an ``.osm.pbf``): the one kept beside it if it was built from this extract with this
    speed table, else built now and kept (``dispatch roads build`` does it ahead of time).
    One per process."""
    from dispatch.adapters.osm.reader import SPEEDS_VERSION

    if path.suffix.lower() == ".npz":  # as the options take it
        graph = RoadGraph.load(path)
        # A graph read from an extract (it carries the extract's hash, whatever the
        # extract's name: .osm.pbf or .pbf) must use this version's speed table; one made
        # another way (scripts/road_city.py) carries its own speeds.
        if graph.source_sha256 and graph.speeds_version != SPEEDS_VERSION:
            extract = graph.source or "EXTRACT"
            raise RoadGraphError(
                f"{path} was built with speed table {graph.speeds_version}, this version's is "
                f"{SPEEDS_VERSION}: build it again (dispatch roads build {extract} --force)"
            )
        return graph
    return keep_road_graph(path, progress=progress)[0]


def keep_road_graph(
    extract: Path,
    kept: Path | None = None,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
) -> tuple[RoadGraph, bool]:
    """The road graph of ``extract``, kept at ``kept`` (default: beside it): the kept one
    if it was built from this extract with this speed table (and not ``force``), else
    built now and kept (a damaged kept graph is built again). Returns it, and whether it
    was built. The engine (``road_graph``) and ``dispatch roads build`` share it."""
    from dispatch.adapters.osm.reader import SPEEDS_VERSION, read_road_graph

    if not extract.is_file():
        raise RoadGraphError(f"{extract}: no such OpenStreetMap extract")
    kept = kept or graph_path(extract)
    digest = sha256_of(extract)
    if kept.is_file() and not force:
        try:
            graph = RoadGraph.load(kept)
        except RoadGraphError as error:
            log.warning("%s; building it again", error)
        else:
            if fits(graph, digest, SPEEDS_VERSION):
                return graph, False
            log.info("%s was built from another extract or speed table: building it again",
                     kept)  # fmt: skip
    started = time.monotonic()
    graph = read_road_graph(extract, progress, digest)
    if progress is not None:
        progress("writing the graph")
    graph.save(kept)
    log.info("road graph of %s built in %.1f s: %d nodes, %d edges, kept in %s", extract.name,
             time.monotonic() - started, graph.nodes, graph.edges, kept)  # fmt: skip
    return graph, True


def build_matcher(settings: Settings) -> Matcher:
    limits = SearchLimits(
        radius_m=settings.search_radius_m,
        max_eta_s=settings.max_pickup_eta_s,
        candidates=settings.candidates,
    )
    return Matcher(
        DriverIndex[UUID](settings.h3_resolution, settings.ping_ttl_s),
        build_eta(settings),
        make_strategy(settings.strategy, settings.batch_window_s),
        MatcherConfig(
            offer_timeout_s=settings.offer_timeout_s,
            limits=limits,
            scheduling=SchedulingConfig(margin_s=settings.scheduled_margin_s),
            pool=build_pool_matching(settings),
        ),
        build_surge(settings),
        settings.catalog,
        build_geofences(settings),
        build_hints(settings),
    )


def build_pool_matching(settings: Settings) -> PoolMatching:
    """How the matchers pool shared rides, at the shards' straight-line pace (the pace a
    shared ride's direct trip is recorded at)."""
    limits = PoolLimits(settings.pool_candidates, settings.pool_max_trip,
                        settings.pool_budget_ms / 1e3, settings.pool_drive_weight)  # fmt: skip
    return PoolMatching(straight_line_pace(settings.road_factor, settings.speed_kmh), limits)


def build_hints(settings: Settings) -> Hints | None:
    """The shard's repositioning hints (docs/MARKETPLACE.md); None when they are off."""
    if settings.hint_every_s == 0:
        return None
    return Hints(HintConfig(every_s=settings.hint_every_s,
                            min_interval_s=settings.hint_min_interval_s,
                            max_drive_s=settings.hint_max_drive_s))  # fmt: skip


_GEOFENCES: dict[bytes, Geofences] = {}


def build_geofences(settings: Settings) -> Geofences | None:
    """The markets' geofenced places, prepared once for every shard's matcher (they are
    read-only once built); None when no market has any."""
    if not any(m.places for m in settings.markets):
        return None
    key = orjson.dumps([m.model_dump(mode="json") for m in settings.markets])
    found = _GEOFENCES.get(key)
    if found is None:
        found = _GEOFENCES[key] = Geofences(places_of(settings.markets))
    return found


def build_surge(settings: Settings) -> SurgeTracker | None:
    """The shard's surge tracker (docs/MARKETPLACE.md, "Surge"); None when it is off."""
    if settings.surge_cadence_s == 0:
        return None
    curve = SurgeCurve(settings.surge_cap, settings.surge_gain, settings.surge_smoothing,
                       settings.surge_band, settings.surge_noise)  # fmt: skip
    owner = None
    if settings.shards > 1:
        markets = MarketMap(settings.markets, settings.shards)

        def owner(cell: str) -> int:
            # the shard of the cell's parent region cell (unique, unlike the cell's points)
            return markets.shard_for(*h3.cell_to_latlng(h3.cell_to_parent(cell, REGION_RESOLUTION)))

    config = SurgeConfig(curve, settings.surge_cadence_s, settings.surge_window_s, owner)
    return SurgeTracker(config)


def build_worker(
    settings: Settings, shard: int, clock: Clock, sealer: Sealer | None = None
) -> ShardWorker:
    """``sealer``: shared by the shards of a process (one key cache); made when None."""
    app = build_application(settings, shard, sealer=sealer or build_sealer(settings))
    store = app.recorder if isinstance(app.recorder, CheckpointingRecorder) else None
    writer = None
    if store is not None:
        writer = CheckpointWriter(
            settings.checkpoint_every_events, settings.checkpoint_chunk_rows,
            seal_ride=app.seal_ride, seal_place=app.seal_place,
        )  # fmt: skip
    # The live aggregates let command-record lookups skip the store for ids it cannot
    # hold; SQLite reads aggregates from the shard's file, so checkpoints list them only.
    return ShardWorker(
        shard, app, lambda: build_matcher(settings), clock,
        checkpoints=writer, checkpoint_store=store,
        live=LiveAggregates(settings.idempotency_window_s), live_snapshots=False,
        peers=range(settings.shards), **handoffs(settings),
    )  # fmt: skip


def build_kafka_worker(
    settings: Settings, clock_mode: str = "wall", member: str | None = None, **overrides: Any
) -> KafkaWorker:
    """A `dispatch worker` process's worker: shards the consumer group gives it, each with
    its application on the Kafka store and its matcher, built here. Its applications seal
    personal fields (docs/PRIVACY.md) with one ``Sealer`` whose key store is the
    subject-keys topic, read now (a missing topic stops the worker here)."""
    from dispatch.adapters.kafka.keystore import KafkaKeyStore
    from dispatch.adapters.kafka.topics import Topics
    from dispatch.adapters.kafka.worker import KafkaWorker

    # The road network is read (or built) now, not when the group assigns a shard: a long
    # build would hold up the group's rebalance, and a failure would reach the user wrapped
    # in the consumer's error. A first matcher is made now too: its index loads the
    # compiled scan from numba's cache (0.2-0.4 s), which a takeover would otherwise wait for.
    build_eta(settings)
    build_matcher(settings)
    keys_topic = Topics(settings.topic_prefix).subject_keys
    # a worker makes keys only in its batches' transactions (docs/PRIVACY.md, section 3)
    keys = KafkaKeyStore(
        _connection(settings),
        keys_topic,
        settings.shards,
        keys_outside_batch=False,
        wrap=build_key_wrap(settings),
    )
    sealer = Sealer(PersonalData(AesGcmCipher(), keys))
    command_keys: KafkaKeyStore | None = None
    tracer: Tracer | None = None
    try:
        # the one-time keys sealed commands are opened with (docs/PRIVACY.md)
        command_keys = KafkaKeyStore(
            _connection(settings),
            Topics(settings.topic_prefix).command_keys,
            settings.shards,
            keys_outside_batch=False,
            # A command's key was written just before it, and is visible once the last
            # stable offset passes it (an open batch transaction on the partition holds it
            # back for moments): read again soon, the command waits meanwhile.
            key_poll_s=COMMAND_KEY_POLL_S,
            # a deleted command key is known deleted (its command poison at once) while
            # its tombstone is among the last this many read (review M1)
            remember_tombstones=COMMAND_TOMBSTONES_KEPT,
            wrap=build_key_wrap(settings),
        )
        tracer = build_tracer(settings, "dispatch-worker")
        return KafkaWorker(
            settings,
            lambda shard, env=None: build_application(settings, shard, env, sealer),
            lambda: build_matcher(settings),
            clock_mode=clock_mode,
            member=member,
            sealer=sealer,
            keys=keys,
            command_keys=PersonalData(AesGcmCipher(), command_keys),
            tracer=tracer,
            **overrides,
        )
    except BaseException:
        keys.close()
        if command_keys is not None:
            command_keys.close()
        if tracer is not None:
            tracer.close()
        raise


COMMAND_KEY_POLL_S = 0.002
COMMAND_TOMBSTONES_KEPT = 200_000  # about 30 MB of ids at most


def build_token_codec(
    ring: KeyRing, legacy_secret: str | None = None, legacy_lifetime_s: int = 0
) -> TokenCodec:
    """Bearer tokens signed and verified with ``ring``'s keys (PyJWT, HS256); with a
    ``legacy_secret``, tokens of the format before JWTs signed with it are taken too (as
    access tokens, expiring at most ``legacy_lifetime_s`` ahead), never made."""
    codec = PyJwtCodec(ring)
    if legacy_secret is None:
        return codec
    return LegacyTokens(codec, legacy_secret, legacy_lifetime_s)


def build_markets(settings: Settings) -> MarketMap:
    return MarketMap(settings.markets, settings.shards)


def build_trips(settings: Settings) -> TripEstimator:
    """The distance and duration a quote prices: routed over the road network when one is
    set, else (and off the network) the straight-line estimate."""
    road = build_road_trips(settings)  # the same estimator the shards meter trips by
    return (
        StraightLineTrip(settings.road_factor, settings.speed_kmh)
        if road is None
        else road.estimator
    )


def build_fare_desk(
    settings: Settings,
    ring: KeyRing,
    markets: MarketMap | None = None,
    surge: Callable[[float, float], SurgeReading] | None = None,
) -> FareDesk:
    """Fare quotes: the settings' fare rules (or the defaults), the trip estimate, quotes
    signed with the bearer tokens' key ring for the quotes' own audience (PyJWT), priced
    at ``surge`` (the runtime's surge view: a place's multiplier and where it came from;
    None: 1.00)."""
    return FareDesk(
        fare_book(fares_of(settings)),
        build_trips(settings),
        markets if markets is not None else build_markets(settings),
        PyJwtQuotes(ring),
        settings.quote_ttl_s,
        round(settings.max_trip_km * 1000),
        settings.road_factor,
        surge,
    )


def build_embedded_engine(settings: Settings, clock: Clock = time.time) -> EmbeddedEngine:
    """Every shard in this process, restored from the SQLite files under ``data_dir``.

    A new log gets its manifest (``log.json``, see ``adapters.sqlite.datadir``) once its
    shard files exist; an existing one must match ``settings.shards`` and have every shard file
    sound (``LogIntegrityError`` otherwise). A legacy log (shard files, no manifest) with
    every one of its ``settings.shards`` files is adopted: its manifest is written."""
    data_dir, shards = settings.data_dir, settings.shards
    markets = build_markets(settings)  # a market it cannot route is refused before writing
    build_eta(settings)  # so is a road network it cannot read (one per process: kept)
    new_manifest = prepare_embedded(data_dir, shards)
    transport = EmbeddedTransport()
    if shards > 1:  # each shard sees the drivers near it, whoever owns them
        transport.nearby = markets.nearby_shards
    workers = []
    # sealing begun here needs its own key store (review finding 7); recorded the first time
    check_sealing(data_dir, had_events=not new_manifest, now=clock(), wrap=build_key_wrap(settings))
    sealer = build_sealer(settings)
    try:
        for shard in range(shards):
            with naming(shard_path(data_dir, shard)):
                workers.append(build_worker(settings, shard, clock, sealer))
        if new_manifest:
            write_manifest(data_dir, shards)
            log.info("event log %s: %d shard(s), manifest written", data_dir, shards)
        for worker in workers:
            with naming(shard_path(data_dir, worker.shard)):
                worker.restore()
                worker.app.finish_erasures()  # a kill between an erasure's two commits
    except BaseException:  # a log that does not open or restore leaves no file open
        for worker in workers:
            worker.app.close()
        if sealer is not None:
            sealer.personal.keys.close()
        raise
    return EmbeddedEngine(transport, workers, [sealer.personal.keys.close] if sealer else [])


def build_log_source(settings: Settings) -> LogSource:
    """Where replay and projections read the log: the shard SQLite files, or Kafka.
    Embedded, the data dir's manifest and every shard file it names are checked first
    (``LogIntegrityError`` names what is missing or damaged)."""
    if settings.embedded:
        return SqliteLogSource(settings.data_dir, shards=open_log(settings.data_dir).shards)
    from dispatch.adapters.kafka.logsource import KafkaLogSource

    assert settings.kafka_bootstrap is not None
    return KafkaLogSource(_connection(settings), settings.topic_prefix)


def log_name(settings: Settings) -> str:
    """Which log kept views were folded from (``projections.warm`` checks it)."""
    return "embedded" if settings.embedded else f"kafka:{settings.topic_prefix}"


def build_read_audit(settings: Settings) -> ReadAudit:
    """Where a serving process records what operators read: ``operator-reads.sqlite`` under
    the data dir embedded, the ``<prefix>.operator-reads`` topic on Kafka."""
    if settings.embedded:
        return SqliteReadAudit(read_audit_path(settings.data_dir))
    from dispatch.adapters.kafka.readaudit import KafkaReadAudit

    return KafkaReadAudit(_connection(settings), settings.topic_prefix)


def read_audit_records(settings: Settings) -> list[ReadRecord]:
    """Every operator read recorded for this log (none embedded when no API recorded one in
    the data dir), without making anything; a damaged record is a ValueError naming it."""
    if settings.embedded:
        return list(read_records(read_audit_path(settings.data_dir)))
    from dispatch.adapters.kafka.readaudit import read_kafka_records
    from dispatch.adapters.kafka.topics import Topics

    topic = Topics(settings.topic_prefix).name("operator-reads")
    return list(read_kafka_records(_connection(settings), topic))


def build_view_background(settings: Settings) -> Background:
    """Where a serving process encodes the views it keeps (``views_encode_in``)."""
    if settings.views_encode_in == "child" and hasattr(os, "fork"):
        return ForkedBackground()
    return InlineBackground()


def build_view_history(settings: Settings) -> ViewHistory | None:
    """The views' past states (``views-history.sqlite`` under the data dir, on Kafka too;
    None when ``view_history_keep`` is 0)."""
    if settings.view_history_keep == 0:
        return None
    return SqliteViewHistory(view_history_path(settings.data_dir), settings.view_history_keep)


def build_view_stores(settings: Settings) -> tuple[ViewStore, RideArchive]:
    """Where views are kept between runs (``views.sqlite``) and ended rides are archived
    (``ended-rides.sqlite``): both under the data dir, on Kafka too."""
    return (
        SqliteViewStore(view_store_path(settings.data_dir)),
        SqliteRideArchive(ride_archive_path(settings.data_dir)),
    )


def build_key_wrap(settings: Settings) -> KeyWrap:
    """How subject and command keys are kept (docs/PRIVACY.md, "Wrapped keys"): wrapped
    under the current key-encryption key when some are configured, else as they are."""
    found = settings.key_encryption()
    if found is None:
        return NoWrap()
    keks, current = found
    return AesGcmKeyWrap(keks, current)


def build_key_store(settings: Settings) -> KeyStore:
    """The subject keys (docs/PRIVACY.md): ``subject-keys.sqlite`` under the data dir
    embedded, the compacted keys topic on Kafka; made when first used."""
    if settings.embedded:
        path, wrap = key_store_path(settings.data_dir), build_key_wrap(settings)
        return LazyKeyStore(lambda: SqliteKeyStore(path, wrap))

    def kafka() -> KeyStore:
        from dispatch.adapters.kafka.keystore import KafkaKeyStore
        from dispatch.adapters.kafka.topics import Topics

        name = Topics(settings.topic_prefix).subject_keys
        return KafkaKeyStore(
            _connection(settings), name, settings.shards, wrap=build_key_wrap(settings)
        )

    return LazyKeyStore(kafka)


def seal_commands(bus: KafkaTransport, settings: Settings) -> None:
    """The API's commands on Kafka go with their personal fields sealed under a one-time
    key each, made on the command-keys topic first (``dispatch.sealed_commands``)."""
    from dispatch.adapters.kafka.commandkeys import CommandKeyWriter
    from dispatch.adapters.kafka.topics import Topics

    writer = CommandKeyWriter(
        _connection(settings),
        Topics(settings.topic_prefix).command_keys,
        build_key_wrap(settings),
    )
    bus.seal = CommandSealer(AesGcmCipher(), writer.make).seal
    bus.closing.append(writer.close)


def build_personal(settings: Settings) -> PersonalData:
    """How personal fields are sealed and opened: AES-GCM with the subject keys."""
    return PersonalData(AesGcmCipher(), build_key_store(settings))


def build_reading_personal(settings: Settings) -> PersonalData:
    """``build_personal`` for the tools that only read the log (``dispatch replay``): an
    embedded data dir's missing key store is never made, since a new empty one left behind
    would be refused by the next ``serve`` as another store than sealing began with. Once
    sealing began there (``sealing.json``) a missing store is a ``LogIntegrityError`` at
    once; before, nothing is sealed, and a sealed field met all the same is one then."""
    if settings.embedded:
        path = key_store_path(settings.data_dir)
        if not path.exists():
            if read_sealing(settings.data_dir) is not None:
                raise LogIntegrityError(
                    f"{path} is missing, but sealing began in {settings.data_dir}: without "
                    "it every sealed field reads as erased; restore it with the shard files"
                )

            def missing() -> KeyStore:
                raise LogIntegrityError(f"{path} is missing: a sealed field cannot be opened")

            return PersonalData(AesGcmCipher(), LazyKeyStore(missing))
    return build_personal(settings)


def build_tracer(settings: Settings, service: str) -> Tracer | None:
    """The tracer of a process named ``service`` when commands are traced (JSON logs or an
    exporter: ``Settings.tracing``), else None: with an exporter, OpenTelemetry's SDK spans;
    for JSON logs alone, trace and span ids only (no span to export, a few microseconds a
    command). An exporter that is not installed is an ``ExporterMissing`` here, at start."""
    if not settings.tracing:
        return None
    if settings.otel_exporter is None:
        from dispatch.adapters.otel.ids import IdsTracer

        return IdsTracer()
    from dispatch.adapters.otel.tracer import OtelTracer

    return OtelTracer(service, settings.otel_exporter)


def serving_projections(settings: Settings, open: Opener) -> list[Projection[Any]]:
    """The views a serving process folds, with its settings' parameters (a kept view or
    history point is taken up only by projections of the same parameters)."""
    return default_projections(
        settings.h3_resolution,
        settings.ping_ttl_s,
        settings.ended_ride_retention_s,
        open,
        settings.queued_places,
    )


def build_runtime(settings: Settings, clock: Clock = time.time) -> Runtime:
    """A serving process. Embedded: all shards' workers in threads, views following the
    shard SQLite files. Kafka: commands and pings to the topics, outcomes read back, views
    following the events topic and every ping on the locations topic (the shards' workers
    are `dispatch worker` processes). Either way the views start from those kept under the
    data dir when they match the log (``projections.warm``), and are kept there again."""
    personal = build_personal(settings)
    projections = serving_projections(settings, personal.open)
    name = log_name(settings)
    if not settings.embedded:
        from dispatch.adapters.kafka.locations import LocationFollower
        from dispatch.adapters.kafka.logsource import KafkaFollowSource
        from dispatch.adapters.kafka.transport import KafkaTransport

        assert settings.kafka_bootstrap is not None
        # The keys topic is read now, not at the views' first sealed field (which every
        # deployment meets at once): a key under a key-encryption key this instance does
        # not have stops it here with the reason (docs/PRIVACY.md, "Wrapped keys").
        if isinstance(personal.keys, LazyKeyStore):
            personal.keys.open_now()
        bus = KafkaTransport(_connection(settings), settings.topic_prefix)
        seal_commands(bus, settings)
        markets = build_markets(settings)
        if settings.shards > 1:  # each shard sees the drivers near it, whoever owns them
            bus.nearby = markets.nearby_shards
        source = KafkaFollowSource(_connection(settings), settings.topic_prefix)
        store, archive = build_view_stores(settings)
        started = time.perf_counter()
        warm = warm_views(projections, store, archive, source, name)
        views = warm.views
        log.info("kept views read in %.3f s", time.perf_counter() - started)
        keeper = ViewKeeper(
            views, store, archive, name, settings.views_save_every_s,
            history=build_view_history(settings),
            history_every_s=settings.view_history_every_s,
            background=build_view_background(settings),
        )  # fmt: skip
        runner = ProjectionRunner(source, views, keeper=keeper)
        tracer = build_tracer(settings, "dispatch-api")
        runtime = Runtime(
            settings,
            bus,
            views,
            runner,
            markets,
            clock,
            archive=archive,
            warm=warm,
            closers=[bus.close, source.close, archive.close, personal.keys.close],
            open_personal=personal.open,
            tracer=tracer,
        )
        if tracer is not None:
            runtime.closers.append(tracer.close)
        if settings.shards > 1:  # a driver handed off: its pings to the shard serving it
            bus.serving = runtime.serving
        follower = LocationFollower(
            _connection(settings),
            settings.topic_prefix,
            runtime.apply_pings,
            settings.ping_ttl_s,
            clock,
        )
        runtime.services.append(follower)
        return runtime
    started = time.perf_counter()
    engine = build_embedded_engine(settings, clock)  # checks the data dir first
    restored = time.perf_counter()
    shard_files = SqliteLogSource(settings.data_dir, shards=settings.shards)
    store, archive = build_view_stores(settings)
    warm = warm_views(projections, store, archive, shard_files, name)
    views = warm.views
    log.info(
        "shard workers restored in %.3f s; kept views read in %.3f s",
        restored - started,
        time.perf_counter() - restored,
    )
    keeper = ViewKeeper(
        views, store, archive, name, settings.views_save_every_s,
        history=build_view_history(settings), history_every_s=settings.view_history_every_s,
        background=build_view_background(settings),
    )  # fmt: skip
    runner = ProjectionRunner(shard_files, views, keeper=keeper)
    tracer = build_tracer(settings, "dispatch")
    for worker in engine.workers.values():
        worker.listeners.append(lambda _shard, _recordings: runner.nudge())
        worker.tracer = tracer
    runtime = Runtime(
        settings,
        engine.transport,
        views,
        runner,
        build_markets(settings),
        clock,
        engine,
        archive=archive,
        warm=warm,
        closers=[shard_files.close, archive.close, personal.keys.close],
        open_personal=personal.open,
        clear_before=_clear_before(settings),
        tracer=tracer,
    )
    if tracer is not None:
        runtime.closers.append(tracer.close)
    return runtime


def _clear_before(settings: Settings) -> float | None:
    """When sealing began in an embedded data dir whose log held events already (their
    personal fields were stored in the clear and stay so); None when all was sealed."""
    found = read_sealing(settings.data_dir)
    value = None if found is None else found.get("clear_before")
    return float(value) if isinstance(value, int | float) else None
