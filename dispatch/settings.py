"""One frozen settings object, read from ``DISPATCH_*`` environment variables (or passed in).

No Kafka bootstrap servers means embedded mode: in-process transport and SQLite files
under ``data_dir``. Setting ``DISPATCH_KAFKA_BOOTSTRAP`` switches to Kafka.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dispatch.domain.fares import FareRule
from dispatch.domain.geo import MAX_LAT, MAX_LNG, MIN_LAT, MIN_LNG
from dispatch.domain.pooling import PoolBounds
from dispatch.domain.products import (
    DEFAULT_CATALOG,
    DEFAULT_VEHICLE,
    MAX_SEATS,
    MIN_SEATS,
    PRODUCT_NAME,
    Catalog,
    ProductSpec,
)
from dispatch.domain.scheduling import SchedulingRules
from dispatch.service_areas import ServiceAreaError, area_km2, parse_area

MAX_MARKET_SHARDS = 64
_EMPTY_IS_UNSET = frozenset(
    {"fares", "fares_file", "key_encryption_keys", "key_encryption_keys_file",
     "key_encryption_key_current"}
)  # fmt: skip
KEK_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
KEK_BYTES = 32


def parse_keks(text: str, source: str) -> dict[str, bytes]:
    """Key-encryption keys from their JSON (key id to a 32-byte key in base64, standard or
    URL-safe, padded or not); ``ValueError`` naming ``source`` and what is wrong. A key's
    value is never in a message."""
    ids: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        ids.extend(k for k, _ in items)
        return dict(items)

    try:
        found = json.loads(text, object_pairs_hook=pairs)
    except ValueError:
        raise ValueError(f"{source} is not JSON (an object of key id to key)") from None
    if len(ids) != len(set(ids)):
        raise ValueError(f"{source} names a key id twice: each id names one key")
    if not isinstance(found, dict) or not found:
        raise ValueError(f"{source} must be a JSON object of key id to key, with one at least")
    keks: dict[str, bytes] = {}
    for kek_id, value in found.items():
        if not KEK_ID.fullmatch(kek_id):
            raise ValueError(  # never quoted: it may be a key given the wrong way round
                f"{source}: a key id of {len(kek_id)} characters is not 1 to 32 letters, "
                "digits, '.', '_' or '-' (the object maps ids to keys: {\"<id>\": \"<key>\"})"
            )
        raw = _base64(value) if isinstance(value, str) else None
        if raw is None or len(raw) != KEK_BYTES:
            raise ValueError(
                f"{source}: key {kek_id!r} is not {KEK_BYTES} random bytes in base64 "
                "(`dispatch keys generate` makes one)"
            )
        keks[kek_id] = raw
    return keks


def _base64(text: str) -> bytes | None:
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (ValueError, binascii.Error):
        return None


# The largest place (an airport of the largest kind is some 70 km2), and all places of the
# city together: each costs the matchers a table of resolution-9 cells, built at start.
MAX_PLACE_KM2 = 500.0
MAX_PLACES_KM2 = 5_000.0


class PlaceConfig(BaseModel):
    """A geofenced place of a market (docs/MARKETPLACE.md, "Places: geofences and queues"):
    drivers' pings inside it are recorded as they enter and leave; with ``queue``, its
    available drivers wait in a first-in-first-out queue, and a pickup inside is offered to
    the queue's head first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="unique in the city")
    name: str = Field(default="", max_length=200)
    area: dict[str, Any]  # a GeoJSON Polygon or MultiPolygon within the market's circle
    queue: bool = False
    # A driver inside leaves only when its ping is this far outside the polygon (metres).
    exit_margin_m: float = Field(default=50.0, ge=0, le=1_000)


class MarketConfig(BaseModel):
    """A metro area: a centre and a radius, served by ``shards`` shards from ``shard`` on.

    A market of ``shards`` N > 1 is cut into N contiguous regions of balanced expected load
    (``dispatch.regions``); region i goes to shard ``shard + i``, so the market's regions
    use shards ``shard, shard+1, ..., shard+shards-1``. ``MarketMap`` routes places by region
    where rides are offered drivers across shards (embedded) and refuses such a market where
    they are not yet (Kafka).
    """

    name: str = Field(max_length=200)  # a quote carries it (dispatch.pricing.reading)
    shard: int = Field(ge=0)
    lat: float = Field(ge=MIN_LAT, le=MAX_LAT)
    lng: float = Field(ge=MIN_LNG, le=MAX_LNG)
    radius_km: float = Field(gt=0, le=200)
    shards: int = Field(default=1, ge=1, le=MAX_MARKET_SHARDS)
    # Where the market takes rides: a GeoJSON Polygon or MultiPolygon within its circle
    # (dispatch.service_areas; docs/MARKETPLACE.md). None: anywhere in the market.
    service_area: dict[str, Any] | None = None
    # Geofenced places (airports, stations...): ``PlaceConfig``; none by default.
    places: list[PlaceConfig] = Field(default_factory=list, max_length=10_000)
    # the places' area in km2, found when they are checked (the city's limit sums it)
    _places_km2: float = PrivateAttr(default=0.0)

    @model_validator(mode="after")
    def _service_area_is_usable(self) -> MarketConfig:
        centre = (self.lat, self.lng)
        self._places_km2 = 0.0
        try:
            if self.service_area is not None:
                parse_area(self.service_area, self.name, centre, self.radius_km)
            for place in self.places:
                what = f"place {place.id!r}"
                size = area_km2(parse_area(place.area, self.name, centre, self.radius_km, what))
                if size > MAX_PLACE_KM2:
                    raise ServiceAreaError(
                        f"market {self.name!r}: {what} covers {size:,.0f} km2, more than "
                        f"{MAX_PLACE_KM2:,.0f}: a place is an airport or a station, not a "
                        "district (a service area says where a market takes rides)"
                    )
                self._places_km2 += size
        except ServiceAreaError as error:
            raise ValueError(str(error)) from None
        return self

    @property
    def shard_range(self) -> range:
        """The shards of the market's regions."""
        return range(self.shard, self.shard + self.shards)


# DISPATCH_MARKETS unset: one market (the default fare rules are its, in US dollars).
DEFAULT_MARKETS = (
    MarketConfig(name="san-francisco", shard=0, lat=37.77, lng=-122.42, radius_km=40),
)


# An amount of money in a currency's major unit: a JSON string ("2.50") or number, at most
# 4 digits after the point (a fare rule's ``base`` and ``minimum``: whole minor units).
# ``-0`` passes ``ge=0``: it is read as ``0``, so that it is the same rule (and version).
Amount = Annotated[
    Decimal,
    Field(ge=0, le=100_000, decimal_places=4, allow_inf_nan=False),
    AfterValidator(Decimal.copy_abs),
]


ProductKey = Annotated[str, Field(pattern=PRODUCT_NAME)]


class ProductConfig(BaseModel):
    """What a vehicle needs to serve one product (``DISPATCH_PRODUCTS``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_seats: int = Field(default=4, ge=MIN_SEATS, le=MAX_SEATS)
    accessible: bool = False  # the vehicle must be wheelchair accessible


DEFAULT_PRODUCTS: dict[str, ProductConfig] = {
    name: ProductConfig(min_seats=spec.min_seats, accessible=spec.accessible)
    for name, spec in DEFAULT_CATALOG.specs.items()
}


class ProductFareConfig(BaseModel):
    """How one product is priced: ``base`` + ``per_km`` + ``per_min``, at least ``minimum``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: Amount
    per_km: Amount
    per_min: Amount
    minimum: Amount


class FareRulesConfig(BaseModel):
    """One market's fare rules: its currency and a rule for each product it offers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    products: dict[ProductKey, ProductFareConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _rules_fit_the_currency(self) -> FareRulesConfig:
        for product, fare in self.products.items():
            try:
                FareRule(self.currency, fare.base, fare.per_km, fare.per_min, fare.minimum)
            except ValueError as error:
                raise ValueError(f"{product}: {error}") from None
        return self


class FaresConfig(BaseModel):
    """``DISPATCH_FARES``: the rules of each configured market by name, and optionally of
    pickups outside every market (``elsewhere``; none: such a pickup gets no quote)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    markets: dict[str, FareRulesConfig] = Field(default_factory=dict)
    elsewhere: FareRulesConfig | None = None


class Settings(BaseSettings):
    # hide_input_in_errors: an error never quotes what was given (a password, a key)
    model_config = SettingsConfigDict(
        env_prefix="DISPATCH_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Path(".dispatch-data")
    kafka_bootstrap: str | None = None
    # How this process reaches the brokers (docs/SECURITY.md): PLAINTEXT, no authentication,
    # on the single local broker; SASL_SSL with the process's own SCRAM principal and the
    # cluster's CA on a secured cluster (``adapters/kafka/config.connection_of``).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_password_file: Path | None = None  # instead of the password (its first line)
    kafka_ssl_cafile: Path | None = None
    # Key-encryption keys (docs/PRIVACY.md, "Wrapped keys"): the subject keys are kept
    # wrapped under one, held outside the data dir and the log. A JSON object of key id to
    # a random 32-byte key in base64 (`dispatch keys generate` makes one), in
    # DISPATCH_KEY_ENCRYPTION_KEYS or in a file (DISPATCH_KEY_ENCRYPTION_KEYS_FILE); with
    # several, DISPATCH_KEY_ENCRYPTION_KEY_CURRENT names the one new keys are wrapped under.
    # Unset: keys are kept as they are.
    key_encryption_keys: SecretStr | None = None
    key_encryption_keys_file: Path | None = None
    key_encryption_key_current: str | None = None
    topic_prefix: str = "dispatch"
    shards: int = Field(default=4, ge=1, le=4096)

    strategy: Literal["greedy", "batch"] = "greedy"
    batch_window_s: float = Field(default=2.0, gt=0)
    offer_timeout_s: float = Field(default=15.0, gt=0)
    # Driver hand-off (docs/ARCHITECTURE.md, "Driver hand-off"): a free driver whose pings
    # stay this long in the region of another shard is handed off to it. 0: off (drivers
    # stay with the shard they registered in, and are matched elsewhere across shards).
    handoff_after_s: float = Field(default=60.0, ge=0)
    max_wait_s: float = Field(default=300.0, gt=0)
    search_radius_m: float = Field(default=3_000.0, gt=0, le=20_000)
    max_pickup_eta_s: float = Field(default=900.0, gt=0)
    candidates: int = Field(default=8, ge=1, le=64)
    h3_resolution: int = Field(default=9, ge=5, le=12)
    ping_ttl_s: float = Field(default=30.0, gt=0)
    road_factor: float = Field(default=1.35, ge=1.0)
    # Pickup ETAs routed over a road network (docs/ARCHITECTURE.md, "Road networks"): an
    # OpenStreetMap extract (.osm.pbf; its graph is built once and kept beside it) or a
    # graph built by `dispatch roads build` (.roads.npz). None: straight-line estimates.
    road_network: Path | None = None

    @field_validator("road_network", mode="before")
    @classmethod
    def _empty_is_no_road_network(cls, value: object) -> object:
        """``DISPATCH_ROAD_NETWORK=`` (empty) means none, not the current folder."""
        return None if isinstance(value, str) and not value.strip() else value

    speed_kmh: float = Field(default=25.0, gt=0)
    # `dispatch worker` serves /metrics, /livez and /readyz on this port (0: any free one;
    # None: none) and address (docs/OPERATIONS.md); its --metrics-port/--metrics-host win.
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # How `dispatch serve` and `dispatch worker` log (their --log-format wins): text lines,
    # or JSON lines with the command id, shard, batch and trace id (dispatch/logs.py).
    log_format: Literal["text", "json"] = "text"
    # The level of the project's own loggers (dispatch.*; the libraries' stay at info):
    # debug adds a line for each command, in the API and in the worker that applies it.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Where the spans of a command go (docs/OPERATIONS.md, "Traceable commands"): none by
    # default; console (standard output) or otlp (needs opentelemetry-exporter-otlp, whose
    # own OTEL_EXPORTER_OTLP_* variables say where). With JSON logs or an exporter, the API
    # and the workers trace commands: W3C trace context in the commands' and outcomes'
    # record headers, and the trace id in the log lines.
    otel_exporter: Literal["console", "otlp"] | None = None

    @property
    def tracing(self) -> bool:
        """Whether commands are traced: with JSON logs (for their trace ids) or an exporter."""
        return self.log_format == "json" or self.otel_exporter is not None

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        """``DISPATCH_LOG_LEVEL=DEBUG`` as well as ``debug``."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("otel_exporter", mode="before")
    @classmethod
    def _empty_is_no_exporter(cls, value: object) -> object:
        """``DISPATCH_OTEL_EXPORTER=`` (empty) or ``none`` means no exporter."""
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        return value

    # A shard checkpoint of the matcher's folded state begins every this many events (0:
    # never) and is written a chunk of at most checkpoint_chunk_rows rows a batch (in the
    # shard file embedded, in the checkpoints topic on Kafka).
    checkpoint_every_events: int = Field(default=50_000, ge=0)
    checkpoint_chunk_rows: int = Field(default=10_000, ge=1)
    # How long a command's record answers a retry of its command id (docs/ARCHITECTURE.md,
    # Idempotency); every record carries the window it was written with.
    idempotency_window_s: float = Field(default=86_400.0, gt=0)
    # A serving process keeps its views (with their log positions) in views.sqlite under
    # data_dir every this many seconds and at a clean stop (0: only at a stop), and starts
    # from them. Ended rides leave the in-memory rides view this many seconds of log time
    # after they ended; ended-rides.sqlite answers for them from then on.
    views_save_every_s: float = Field(default=60.0, ge=0)
    # Where a serving process encodes its views every views_save_every_s: "child" (a forked
    # child, so the encoding takes no time from the API's event loop; where the platform
    # cannot fork, and whenever the child fails, on the folding thread) or "thread" (the
    # folding thread; docs/BENCHMARKS.md, "The API's tail").
    views_encode_in: Literal["child", "thread"] = "child"
    ended_ride_retention_s: float = Field(default=3_600.0, ge=0)
    # Past states of the views for time travel (the /ops time slider, `dispatch replay
    # state --ops`): at a save, a point once this many seconds of log time have passed
    # since the last, the latest view_history_keep of them kept in views-history.sqlite
    # under data_dir (0: none kept, and time travel folds the log from its start).
    view_history_every_s: float = Field(default=900.0, gt=0)
    view_history_keep: int = Field(default=96, ge=0)
    # The serving process (`dispatch serve`) lets another thread take the GIL after this
    # many milliseconds (Python's default is 5): the event loop gives the GIL up at every
    # socket call and, at 5 ms, waited that long to get it back each time a thread that
    # computes (keeping the views, a tick) held it; docs/BENCHMARKS.md, "The API's tail".
    api_gil_switch_interval_ms: float = Field(default=0.5, gt=0, le=100)

    markets: list[MarketConfig] = Field(default_factory=lambda: list(DEFAULT_MARKETS))

    # The product catalog (docs/MARKETPLACE.md, "The product lever"): DISPATCH_PRODUCTS, JSON, by
    # name what a vehicle needs to serve each ({"xl": {"min_seats": 6}, ...}); replaces the
    # defaults (standard, xl, accessible) as a whole.
    products: Annotated[dict[ProductKey, ProductConfig], Field(min_length=1)] = Field(
        default_factory=lambda: dict(DEFAULT_PRODUCTS)
    )

    # Fare rules (docs/MARKETPLACE.md): DISPATCH_FARES (JSON) or DISPATCH_FARES_FILE (the same
    # JSON in a file). None: the default rules (dispatch.pricing.rules) in every market.
    # NoDecode: the JSON is read here (``_read_fares_file``), its numbers as decimals.
    fares: Annotated[FaresConfig | None, NoDecode] = None
    fares_file: Path | None = None
    # How long a fare quote (POST /fares/estimate) may be used.
    quote_ttl_s: int = Field(default=300, ge=30, le=3_600)
    # The longest trip a quote prices (km, as estimated): a longer one gets a 422.
    max_trip_km: float = Field(default=200.0, gt=0, le=2_000)
    # Surge (docs/MARKETPLACE.md, "Surge"): a multiplier per H3 cell, recomputed by each
    # shard every surge_cadence_s seconds of its clock (0: off, every multiplier 1.00) from
    # the ride requests of the last surge_window_s and the available drivers, at most
    # surge_cap; each cadence closes surge_smoothing of the gap to the target, and a change
    # is recorded only beyond surge_band (hysteresis).
    surge_cadence_s: float = Field(default=30.0, ge=0, le=3_600)
    # Repositioning hints (docs/MARKETPLACE.md, "Places: repositioning hints"): every
    # hint_every_s seconds (0: off, the default), idle drivers within hint_max_drive_s of a
    # cell where demand outruns supply are told of it, each at most once a
    # hint_min_interval_s.
    hint_every_s: float = Field(default=0.0, ge=0, le=3_600)
    hint_min_interval_s: float = Field(default=300.0, ge=0, le=86_400)
    hint_max_drive_s: float = Field(default=600.0, gt=0, le=7_200)
    # Scheduled rides (docs/MARKETPLACE.md, "Scheduled rides"): booked at least
    # scheduled_min_lead_s and at most scheduled_horizon_s ahead, at most
    # scheduled_max_per_rider held by a rider at once, free to cancel until
    # scheduled_free_cancel_s before their time; dispatched at their time less the expected
    # pickup and scheduled_margin_s; searched for until scheduled_search_after_s after it.
    scheduled_min_lead_s: float = Field(default=900.0, gt=0, le=86_400)
    scheduled_horizon_s: float = Field(default=7 * 86_400.0, gt=0, le=90 * 86_400)
    scheduled_max_per_rider: int = Field(default=3, ge=1, le=100)
    scheduled_free_cancel_s: float = Field(default=3_600.0, ge=0, le=7 * 86_400)
    scheduled_search_after_s: float = Field(default=900.0, ge=0, le=86_400)
    scheduled_margin_s: float = Field(default=300.0, ge=0, le=7_200)
    # Shared rides (docs/ARCHITECTURE.md, "Shared rides"): refused unless pool is on; each
    # shared rider is picked up within pool_max_wait_s of the request and rides at most
    # pool_detour_factor times the direct trip; a window tries pool_candidates vehicles per
    # rider, puts at most pool_max_trip riders into one vehicle, and is decided within
    # pool_budget_ms (the batch strategy's; the greedy strategy inserts riders one by one).
    # A plan's cost is its riders' total delay plus pool_drive_weight times the seconds the
    # vehicle drives it: above 0, a rider goes into a car already on its way rather than a
    # free one when the driving saved is worth the delay added.
    pool: bool = False
    pool_max_wait_s: float = Field(default=300.0, gt=0, le=3_600)
    pool_detour_factor: float = Field(default=1.5, ge=1, le=5)
    pool_candidates: int = Field(default=8, ge=1, le=64)
    pool_max_trip: int = Field(default=3, ge=1, le=6)
    pool_budget_ms: float = Field(default=150.0, gt=0, le=10_000)
    pool_drive_weight: float = Field(default=1.0, ge=0, le=100)
    surge_window_s: float = Field(default=300.0, gt=0, le=86_400)
    surge_cap: Decimal = Field(default=Decimal("3.00"), ge=1, le=10, decimal_places=2)
    surge_gain: float = Field(default=0.5, gt=0, le=100)
    surge_smoothing: float = Field(default=0.5, gt=0, le=1)
    surge_band: Decimal = Field(default=Decimal("0.10"), ge=Decimal("0.01"), le=1, decimal_places=2)
    # and only when the window's demand is more than surge_noise Poisson standard deviations
    # from the demand the level implies (0: off)
    surge_noise: float = Field(default=0.0, ge=0, le=10)

    @model_validator(mode="before")
    @classmethod
    def _read_fares_file(cls, data: Any) -> Any:
        """``DISPATCH_FARES`` (JSON text) or ``DISPATCH_FARES_FILE`` (the same in a file),
        read with exact decimals (``_json``). An empty one is unset."""
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if not (k in _EMPTY_IS_UNSET and v == "")}
        if isinstance(data.get("fares"), str):  # DISPATCH_FARES, as text (NoDecode)
            try:
                data["fares"] = _json(data["fares"])
            except ValueError as error:
                raise ValueError(f"DISPATCH_FARES is not JSON ({error})") from None
        if data.get("fares_file") is None:
            return data
        if data.get("fares") is not None:
            raise ValueError("set DISPATCH_FARES or DISPATCH_FARES_FILE, not both")
        path = Path(data["fares_file"])
        try:
            fares = _json(path.read_text())
        except OSError as error:
            raise ValueError(f"DISPATCH_FARES_FILE {path}: {error.strerror}") from None
        except ValueError as error:
            raise ValueError(f"DISPATCH_FARES_FILE {path}: not JSON ({error})") from None
        return {**data, "fares": fares}

    @model_validator(mode="after")
    def _key_encryption_keys_read(self) -> Settings:
        """The key-encryption keys are read now, so a bad value stops the process at start
        with the reason."""
        self.key_encryption()
        return self

    def key_encryption(self) -> tuple[dict[str, bytes], str] | None:
        """The key-encryption keys by id and the current one's id; None when unset.
        ``ValueError`` with the reason when they are not usable."""
        text, source = self._key_encryption_text()
        if text is None:
            if self.key_encryption_key_current is not None:
                raise ValueError(
                    "DISPATCH_KEY_ENCRYPTION_KEY_CURRENT is set, but no key-encryption keys "
                    "are (DISPATCH_KEY_ENCRYPTION_KEYS or DISPATCH_KEY_ENCRYPTION_KEYS_FILE)"
                )
            return None
        keks = parse_keks(text, source)
        current = self.key_encryption_key_current
        if current is None:
            if len(keks) > 1:
                raise ValueError(
                    f"DISPATCH_KEY_ENCRYPTION_KEY_CURRENT must name the key new subject keys "
                    f"are wrapped under: one of {', '.join(sorted(keks))}"
                )
            current = next(iter(keks))
        if current not in keks:
            shown = repr(current) if KEK_ID.fullmatch(current) else "(not a key id)"
            raise ValueError(  # a value that is not an id may be a key: never quoted
                f"DISPATCH_KEY_ENCRYPTION_KEY_CURRENT {shown} names no key of {source} "
                f"(its keys: {', '.join(sorted(keks))})"
            )
        return keks, current

    def _key_encryption_text(self) -> tuple[str | None, str]:
        given, path = self.key_encryption_keys, self.key_encryption_keys_file
        if given is not None and path is not None:
            raise ValueError(
                "set DISPATCH_KEY_ENCRYPTION_KEYS or DISPATCH_KEY_ENCRYPTION_KEYS_FILE, not both"
            )
        if given is not None:
            return given.get_secret_value(), "DISPATCH_KEY_ENCRYPTION_KEYS"
        if path is None:
            return None, ""
        try:
            return path.read_text(), f"DISPATCH_KEY_ENCRYPTION_KEYS_FILE {path}"
        except UnicodeDecodeError:
            raise ValueError(
                f"DISPATCH_KEY_ENCRYPTION_KEYS_FILE {path}: not UTF-8 text (JSON of key id to key)"
            ) from None
        except OSError as error:
            raise ValueError(
                f"DISPATCH_KEY_ENCRYPTION_KEYS_FILE {path}: {error.strerror}"
            ) from None

    @model_validator(mode="after")
    def _surge_window_holds_a_cadence(self) -> Settings:
        """A surge window shorter than the cadence would count only the last part of each
        cadence's requests: refused at start."""
        if self.surge_cadence_s and self.surge_window_s < self.surge_cadence_s:
            raise ValueError(
                f"DISPATCH_SURGE_WINDOW_S ({self.surge_window_s:g}) must be at least "
                f"DISPATCH_SURGE_CADENCE_S ({self.surge_cadence_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _lead_below_horizon(self) -> Settings:
        if self.scheduled_min_lead_s >= self.scheduled_horizon_s:
            raise ValueError(
                f"DISPATCH_SCHEDULED_MIN_LEAD_S ({self.scheduled_min_lead_s}) must be below "
                f"DISPATCH_SCHEDULED_HORIZON_S ({self.scheduled_horizon_s})"
            )
        return self

    @property
    def scheduling(self) -> SchedulingRules:
        """The rules of scheduled rides, as the shards apply them."""
        return SchedulingRules(
            min_lead_s=self.scheduled_min_lead_s,
            horizon_s=self.scheduled_horizon_s,
            max_per_rider=self.scheduled_max_per_rider,
            free_cancel_s=self.scheduled_free_cancel_s,
            search_after_s=self.scheduled_search_after_s,
            margin_s=self.scheduled_margin_s,
        )

    @property
    def pool_bounds(self) -> PoolBounds | None:
        """Shared rides' bounds, as the shards record them; None when pooling is off."""
        return PoolBounds(self.pool_max_wait_s, self.pool_detour_factor) if self.pool else None

    @property
    def queued_places(self) -> frozenset[str]:
        """The ids of the markets' places that keep a queue."""
        return frozenset(p.id for m in self.markets for p in m.places if p.queue)

    @property
    def catalog(self) -> Catalog:
        """The products, as the domain takes them."""
        return Catalog(
            ProductSpec(name, spec.min_seats, spec.accessible)
            for name, spec in self.products.items()
        )

    @model_validator(mode="after")
    def _default_vehicle_serves_standard(self) -> Settings:
        """The catalog lists ``standard`` and the default vehicle (standard, 4 seats, not
        accessible) qualifies for it: a driver registered without a vehicle, or before
        vehicles were, drives it, and a ride asked for with no product is standard."""
        spec = self.products.get("standard")
        vehicle = DEFAULT_VEHICLE
        if spec is None:
            raise ValueError(
                "DISPATCH_PRODUCTS must list 'standard' (products: "
                f"{', '.join(self.products)}): drivers registered without a vehicle, or "
                "before vehicles, drive the default vehicle (standard, 4 seats, not "
                "accessible), and a ride asked for with no product is standard"
            )
        if not ProductSpec("standard", spec.min_seats, spec.accessible).qualifies(vehicle):
            raise ValueError(
                f"DISPATCH_PRODUCTS: 'standard' must be served by the default vehicle "
                f"({vehicle.seats} seats, not accessible), so min_seats at most "
                f"{vehicle.seats} and accessible false (got min_seats {spec.min_seats}, "
                f"accessible {str(spec.accessible).lower()}): drivers registered without a "
                "vehicle, or before vehicles, drive it"
            )
        return self

    @model_validator(mode="after")
    def _fares_price_catalog_products(self) -> Settings:
        """Fare rules price products of the catalog only (a rule for an unknown product
        is a typo, or a product that no driver could ever serve)."""
        if self.fares is None:
            return self
        rule_sets = [*self.fares.markets.items(), ("elsewhere", self.fares.elsewhere)]
        for where, rules in rule_sets:
            unknown = sorted(set(rules.products) - set(self.products)) if rules else []
            if unknown:
                raise ValueError(
                    f"DISPATCH_FARES ({where}) prices products that DISPATCH_PRODUCTS does "
                    f"not list: {', '.join(map(repr, unknown))} (products: "
                    f"{', '.join(self.products)})"
                )
        return self

    @model_validator(mode="after")
    def _every_market_has_fares(self) -> Settings:
        """Fare rules name configured markets only, and every configured market has some."""
        if self.fares is None:
            return self
        names = [market.name for market in self.markets]
        unknown = sorted(set(self.fares.markets) - set(names))
        if unknown:
            raise ValueError(
                f"DISPATCH_FARES names markets that DISPATCH_MARKETS does not: "
                f"{', '.join(map(repr, unknown))} (markets: {', '.join(map(repr, names))})"
            )
        missing = [name for name in names if name not in self.fares.markets]
        if missing:
            raise ValueError(
                f"DISPATCH_FARES has no rules for the market(s) {', '.join(map(repr, missing))}"
            )
        return self

    @field_validator("markets")
    @classmethod
    def _place_ids_are_unique(cls, markets: list[MarketConfig]) -> list[MarketConfig]:
        total = sum(m._places_km2 for m in markets)
        if total > MAX_PLACES_KM2:
            raise ValueError(
                f"the places cover {total:,.0f} km2 in all, more than {MAX_PLACES_KM2:,.0f}"
            )
        seen: dict[str, str] = {}
        for market in markets:
            for place in market.places:
                if place.id in seen:
                    raise ValueError(
                        f"place id {place.id!r} is used twice (markets {seen[place.id]!r} "
                        f"and {market.name!r}): place ids are unique in the city"
                    )
                seen[place.id] = market.name
        return markets

    @field_validator("markets")
    @classmethod
    def _split_markets_own_their_shards(cls, markets: list[MarketConfig]) -> list[MarketConfig]:
        """A split market's shards are its own: no other market's range may overlap them
        (several one-shard markets may still share a shard, as before)."""
        for i, one in enumerate(markets):
            for other in markets[i + 1 :]:
                if one.shards == 1 and other.shards == 1:
                    continue
                if one.shard_range.start < other.shard_range.stop and (
                    other.shard_range.start < one.shard_range.stop
                ):
                    raise ValueError(
                        f"the shards of {_describe(one)} and {_describe(other)} overlap: a "
                        "market split over several shards must have its shards to itself"
                    )
        return markets

    @model_validator(mode="after")
    def _split_markets_fit_the_shards(self) -> Settings:
        """A split market's last shard exists (one-shard markets are checked where they are
        routed, as before)."""
        for market in self.markets:
            if market.shards > 1 and market.shard_range.stop > self.shards:
                raise ValueError(
                    f"{_describe(market)} needs {market.shard_range.stop} shards, but "
                    f"DISPATCH_SHARDS is {self.shards}"
                )
        return self

    @property
    def embedded(self) -> bool:
        return not self.kafka_bootstrap


def _json(text: str) -> Any:
    """JSON whose numbers with a fraction or an exponent are read as ``Decimal`` from their
    text (``2.50000000000000001`` stays what it says, never a float's ``2.5``)."""
    return json.loads(text, parse_float=Decimal)


def _describe(market: MarketConfig) -> str:
    last = market.shard + market.shards - 1
    shards = f"shard {market.shard}" if market.shards == 1 else f"shards {market.shard}..{last}"
    return f"{market.name!r} ({shards})"
