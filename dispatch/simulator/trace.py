"""Demand traces: ride requests read from a file of real (or recorded) trips, and written back.

``read_trace`` turns a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file of
trips into the simulator's demand: ``Request``s sorted by ``at_s``, seconds since the
simulation starts. It knows our own column names and those of common public taxi-trip data
(NYC TLC yellow, green, FHV and high-volume FHV; Chicago taxi trips); files that give zones
instead of coordinates need a zone table of centroids. ``write_demand`` writes a demand in our
own format (it reads back to the same requests) and ``demand_hash`` names a demand by its
content. docs/DEMAND_TRACES.md is the user's description of the format.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Literal

from dispatch.files import replacing
from dispatch.simulator.results import Request

# Column names, compared after normalising: lower case, every run of characters other than
# letters and digits turned into one "_" ("Trip Start Timestamp" -> "trip_start_timestamp",
# "PULocationID" -> "pulocationid"). Within a tuple the first name the file has wins.
TIME_COLUMNS: tuple[str, ...] = (
    # When the rider asked: preferred, because that is the moment demand arrives.
    "request_time",  # ours
    "request_datetime",  # NYC TLC high-volume FHV
    "requested_at",
    "request_timestamp",
    # When the trip started: used only when the file has no request time.
    "tpep_pickup_datetime",  # NYC TLC yellow
    "lpep_pickup_datetime",  # NYC TLC green
    "pickup_datetime",  # NYC TLC FHV, high-volume FHV, yellow 2010
    "trip_pickup_datetime",  # NYC TLC yellow 2009
    "trip_start_timestamp",  # Chicago taxi trips ("Trip Start Timestamp")
    "pickup_time",
    "pickup_timestamp",
    "started_at",
)
COORDINATE_COLUMNS: dict[str, tuple[str, ...]] = {
    "pickup_lat": (
        "pickup_lat",  # ours
        "pickup_latitude",  # NYC TLC yellow and green until mid-2016
        "pickup_centroid_latitude",  # Chicago
        "start_lat",  # NYC TLC yellow 2009 ("Start_Lat")
        "start_latitude",
        "origin_lat",
        "origin_latitude",
    ),
    "pickup_lng": (
        "pickup_lng",  # ours
        "pickup_lon",
        "pickup_long",
        "pickup_longitude",
        "pickup_centroid_longitude",
        "start_lng",
        "start_lon",
        "start_longitude",
        "origin_lng",
        "origin_lon",
        "origin_longitude",
    ),
    "dropoff_lat": (
        "dropoff_lat",
        "dropoff_latitude",
        "dropoff_centroid_latitude",
        "end_lat",
        "end_latitude",
        "destination_lat",
        "destination_latitude",
    ),
    "dropoff_lng": (
        "dropoff_lng",
        "dropoff_lon",
        "dropoff_long",
        "dropoff_longitude",
        "dropoff_centroid_longitude",
        "end_lng",
        "end_lon",
        "end_longitude",
        "destination_lng",
        "destination_lon",
        "destination_longitude",
    ),
}
# Used only when the side has no coordinate columns; they need a zone table (``zones``).
ZONE_COLUMNS: dict[str, tuple[str, ...]] = {
    "pickup": (
        "pulocationid",  # NYC TLC since mid-2016 ("PULocationID"), FHV ("PUlocationID")
        "pickup_zone",
        "pickup_location_id",
        "pickup_community_area",  # Chicago ("Pickup Community Area")
    ),
    "dropoff": (
        "dolocationid",
        "dropoff_zone",
        "dropoff_location_id",
        "dropoff_community_area",
    ),
}
# The zone table: one row a zone, its id and its centroid.
ZONE_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "zone": ("locationid", "location_id", "zone", "zone_id"),  # LocationID first: see docs
    "lat": ("lat", "latitude"),
    "lng": ("lng", "lon", "long", "longitude"),
}
OUR_COLUMNS = ("request_time", "pickup_lat", "pickup_lng", "dropoff_lat", "dropoff_lng")

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED = "CSV (.csv, .csv.gz) or Parquet (.parquet, .pq)"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MIN_US = (datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) // _US
_MAX_US = (datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH) // _US
_US_DATE = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?"
    r"\s*([AaPp][Mm])?"
)
_BATCH_ROWS = 65_536


class TraceError(Exception):
    """A trace (or zone table) that cannot be read: the message names the file and why."""


@dataclass(frozen=True, slots=True)
class Trace:
    """The demand read from a trace and what reading it met.

    ``rows`` counts the data rows read (header and blank lines excluded):
    ``rows == len(requests) + skipped + outside_window``.
    """

    requests: list[Request]
    rows: int
    skipped: int  # bad rows skipped (only with skip_bad_rows)
    skipped_reasons: dict[str, int]  # reason -> bad rows skipped for it
    source: str
    first_time: datetime  # UTC: the trace time that at_s 0 stands for
    outside_window: int = 0  # good rows left out by the window


class _BadRow(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Place:
    """Where one side (pickup or dropoff) of a row is: two coordinate columns or a zone."""

    side: str
    lat: str | None = None
    lng: str | None = None
    zone: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.zone,) if self.zone is not None else (str(self.lat), str(self.lng))


@dataclass(frozen=True, slots=True)
class _Layout:
    """The columns a trace is read from, as the file names them."""

    time: str
    pickup: _Place
    dropoff: _Place

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.time, *self.pickup.columns, *self.dropoff.columns)


@dataclass(slots=True)
class _Kept:
    """The good rows so far, as (microseconds since the epoch, pickup, dropoff)."""

    rows: list[tuple[int, tuple[float, float], tuple[float, float]]] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    read: int = 0
    clock: bool | None = None  # times are dates (True) or plain seconds (False)


Zones = dict[str, tuple[float, float]]


# -- reading -------------------------------------------------------------------------------


def read_trace(
    path: Path,
    *,
    zones: Path | None = None,
    time_scale: float = 1.0,
    window: tuple[float, float] | None = None,
    skip_bad_rows: bool = False,
) -> Trace:
    """The demand in the trip file ``path``, sorted by time (rows of equal time keep their order).

    ``at_s = (t - first_time) / time_scale``: with ``time_scale=2`` an hour of trace plays in
    30 simulated minutes (same requests, twice the rate). ``window=(start_s, end_s)`` keeps
    rows whose offset from the trace's first time, in trace seconds before scaling, is in
    ``[start_s, end_s)``; ``at_s`` then counts from the window's start. ``zones`` is the zone
    table a file with zones instead of coordinates needs.

    Raises ``ValueError`` for a bad ``time_scale`` or ``window`` and ``TraceError`` for a file
    that cannot be read, or a bad row unless ``skip_bad_rows`` (then it is counted by reason).
    """
    _check_time_scale(time_scale)
    _check_window(window)
    path = Path(path)
    kind = _kind_of(path)
    _check_file(path, "trace")
    table = _read_zone_table(Path(zones)) if zones is not None else None
    kept = _Kept()
    if kind == "csv":
        layout, rows = _csv_trace_rows(path)
    else:
        layout, rows = _parquet_trace_rows(path)
    _require_zones(path, layout, table)
    for number, values in enumerate(rows, start=1):
        _take_row(kept, number, values, layout, table or {}, path, skip_bad_rows)
    return _build(path, kept, time_scale, window)


def _check_time_scale(time_scale: float) -> None:
    if not (isinstance(time_scale, int | float) and math.isfinite(time_scale) and time_scale > 0):
        raise ValueError(
            f"time_scale must be a finite number above 0 (2 plays the trace twice as fast, "
            f"0.5 half as fast), not {time_scale!r}"
        )


def _check_window(window: tuple[float, float] | None) -> None:
    if window is None:
        return
    start, end = window
    if not math.isfinite(start) or start < 0:
        raise ValueError(f"window start must be a finite number of seconds >= 0, not {start!r}")
    if math.isnan(end) or end <= start:
        raise ValueError(f"window end must be after its start ({start!r} s), not {end!r}")


def _kind_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise TraceError(f"{path}: unsupported file type; a trace is {SUPPORTED}")


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise TraceError(f"{path}: no such {what} file")
    if not path.is_file():
        raise TraceError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise TraceError(f"{path}: the {what} file is empty")


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _find(header: dict[str, str], aliases: Sequence[str]) -> str | None:
    """The file's name of the first alias the header has (``header``: normalised -> name)."""
    return next((header[alias] for alias in aliases if alias in header), None)


def _index_header(names: Sequence[str]) -> dict[str, str]:
    header: dict[str, str] = {}
    for name in names:
        header.setdefault(_normalise(name), name)
    return header


def _layout(path: Path, names: Sequence[str]) -> _Layout:
    header = _index_header(names)
    time = _find(header, TIME_COLUMNS)
    if time is None:
        raise TraceError(
            f"{path}: no time column; expected one of {', '.join(TIME_COLUMNS)} "
            f"(case and spaces ignored); the header has {_shown(names)}"
        )
    return _Layout(
        time, _place(path, header, "pickup", names), _place(path, header, "dropoff", names)
    )


def _place(path: Path, header: dict[str, str], side: str, names: Sequence[str]) -> _Place:
    lat = _find(header, COORDINATE_COLUMNS[f"{side}_lat"])
    lng = _find(header, COORDINATE_COLUMNS[f"{side}_lng"])
    if lat is not None and lng is not None:
        return _Place(side, lat=lat, lng=lng)
    zone = _find(header, ZONE_COLUMNS[side])
    if zone is not None:
        return _Place(side, zone=zone)
    raise TraceError(
        f"{path}: no {side} columns; expected a latitude and a longitude column "
        f"({', '.join(COORDINATE_COLUMNS[f'{side}_lat'][:3])} ... and "
        f"{', '.join(COORDINATE_COLUMNS[f'{side}_lng'][:3])} ...) or a zone column "
        f"({', '.join(ZONE_COLUMNS[side])}); the header has {_shown(names)}"
    )


def _shown(names: Sequence[str], most: int = 30) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return (shown + more) if names else "nothing"


def _require_zones(path: Path, layout: _Layout, table: Zones | None) -> None:
    zoned = [p for p in (layout.pickup, layout.dropoff) if p.zone is not None]
    if zoned and table is None:
        given = ", ".join(f"{p.side} zones (column {p.zone!r})" for p in zoned)
        raise TraceError(
            f"{path} gives {given}, not coordinates: pass a zone table with --zones FILE "
            f"(CSV with columns zone or LocationID, lat, lng: each zone's centroid)"
        )


# -- CSV -------------------------------------------------------------------------------------


@contextmanager
def _open_text(
    path: Path, mode: Literal["r", "w"] = "r", *, zipped: bool | None = None
) -> Iterator[IO[str]]:
    """``path`` as text (UTF-8; a BOM is dropped on reading), gunzipped if its name says .gz."""
    encoding = "utf-8-sig" if mode == "r" else "utf-8"
    if zipped if zipped is not None else path.name.lower().endswith(".gz"):
        text_mode: Literal["rt", "wt"] = "rt" if mode == "r" else "wt"
        with gzip.open(path, text_mode, encoding=encoding, newline="") as compressed:
            yield compressed
    else:
        with path.open(mode, encoding=encoding, newline="") as plain:
            yield plain


def _csv_rows(path: Path) -> Iterator[list[str]]:
    """Every non-blank row of a CSV file, header first, streamed; damage is a TraceError."""
    try:
        with _open_text(path) as text:
            for row in csv.reader(text):
                if row:
                    yield row
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as error:
        raise TraceError(f"{path}: cannot be read as {_describe(path)}: {error}") from error


def _describe(path: Path) -> str:
    return "gzip-compressed CSV" if path.name.lower().endswith(".gz") else "UTF-8 CSV"


def _csv_header(path: Path, rows: Iterator[list[str]]) -> list[str]:
    header = next(rows, None)
    if header is None:
        raise TraceError(f"{path}: the file has no rows (not even a header)")
    return header


def _csv_trace_rows(path: Path) -> tuple[_Layout, Iterator[Sequence[object]]]:
    rows = _csv_rows(path)
    header = _csv_header(path, rows)
    layout = _layout(path, header)
    at = [header.index(name) for name in layout.columns]
    return layout, (tuple(row[i] if i < len(row) else None for i in at) for row in rows)


# -- Parquet ---------------------------------------------------------------------------------


def _parquet_trace_rows(path: Path) -> tuple[_Layout, Iterator[Sequence[object]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = list(parquet.schema_arrow.names)
    except (pa.ArrowException, OSError) as error:
        raise TraceError(f"{path}: not a readable Parquet file: {error}") from error
    layout = _layout(path, names)
    return layout, _parquet_rows(path, parquet, layout.columns)


def _parquet_rows(path: Path, parquet: Any, columns: Sequence[str]) -> Iterator[tuple[object, ...]]:
    """The rows of only ``columns``, a batch at a time; timestamps as datetimes (to the µs)."""
    import pyarrow as pa

    wanted = list(dict.fromkeys(columns))
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=wanted):
            values = {name: _python_values(batch.column(name)) for name in wanted}
            yield from zip(*(values[name] for name in columns), strict=True)
    except (pa.ArrowException, OSError) as error:
        raise TraceError(f"{path}: damaged Parquet file: {error}") from error


def _python_values(column: Any) -> list[object]:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind):
        column = column.cast(pa.timestamp("us", tz=kind.tz), safe=False)
    return list(column.to_pylist())


# -- rows ------------------------------------------------------------------------------------


def _take_row(
    kept: _Kept,
    number: int,
    values: Sequence[object],
    layout: _Layout,
    zones: Zones,
    path: Path,
    skip_bad_rows: bool,
) -> None:
    kept.read = number
    try:
        us, clock = _time_us(values[0], layout.time)
        if kept.clock is not None and clock != kept.clock:
            raise _BadRow("mixed_time_kinds", _mixed(layout.time, values[0], kept.clock))
        rest = values[1:]
        width = 1 if layout.pickup.zone is not None else 2
        pickup = _where(layout.pickup, rest[:width], zones)
        dropoff = _where(layout.dropoff, rest[width:], zones)
    except _BadRow as bad:
        if not skip_bad_rows:
            raise TraceError(
                f"{path}: data row {number} (1-based, header not counted): "
                f"{bad.reason.replace('_', ' ')}: {bad.detail}; "
                f"skip_bad_rows (--skip-bad-rows) skips such rows"
            ) from None
        kept.reasons[bad.reason] += 1
        return
    kept.clock = clock
    kept.rows.append((us, pickup, dropoff))


def _mixed(column: str, value: object, clock: bool) -> str:
    before = "dates" if clock else "plain numbers of seconds"
    return f"{column}={value!r}, but the rows before give {before}"


def _time_us(value: object, column: str) -> tuple[int, bool]:
    """Microseconds since 1970-01-01 UTC and whether the value was a date (not plain seconds)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _BadRow("missing_time", f"{column} is empty")
    if isinstance(value, datetime):
        return _checked_us(_datetime_us(value), column, value), True
    if isinstance(value, date):
        return _checked_us(
            _datetime_us(datetime(value.year, value.month, value.day)), column, value
        ), True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _seconds_us(float(value), column, value), False
    if isinstance(value, str):
        return _text_time_us(value, column)
    raise _BadRow("bad_time", f"{column}={value!r} is not a time")


def _datetime_us(moment: datetime) -> int:
    """Naive datetimes are UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _US


def _checked_us(us: int, column: str, value: object) -> int:
    if not _MIN_US <= us <= _MAX_US:
        raise _BadRow("bad_time", f"{column}={value!r} is out of range")
    return us


def _seconds_us(seconds: float, column: str, value: object) -> int:
    if not math.isfinite(seconds):
        raise _BadRow("bad_time", f"{column}={value!r} is not a finite number")
    return _checked_us(round(seconds * 1_000_000), column, value)


def _text_time_us(text: str, column: str) -> tuple[int, bool]:
    stripped = text.strip()
    try:
        return _seconds_us(float(stripped), column, text), False
    except ValueError:
        pass
    try:
        return _checked_us(_datetime_us(datetime.fromisoformat(stripped)), column, text), True
    except ValueError:
        pass
    us = _us_date_us(stripped)
    if us is None:
        raise _BadRow("bad_time", f"{column}={text!r} is not ISO 8601, MM/DD/YYYY or seconds")
    return _checked_us(us, column, text), True


def _us_date_us(text: str) -> int | None:
    """``MM/DD/YYYY HH:MM[:SS[.f]] [AM|PM]`` (Chicago's form), naive = UTC; None if not it."""
    match = _US_DATE.fullmatch(text)
    if match is None:
        return None
    month, day, year, hour, minute, second, fraction, half = match.groups()
    hour_24 = _hour_24(int(hour), half)
    if hour_24 is None:
        return None
    micro = int((fraction or "0").ljust(6, "0"))
    try:
        moment = datetime(
            int(year), int(month), int(day), hour_24, int(minute), int(second or 0), micro
        )
    except ValueError:
        return None
    return _datetime_us(moment)


def _hour_24(hour: int, half: str | None) -> int | None:
    if half is None:
        return hour
    if not 1 <= hour <= 12:
        return None
    return hour % 12 + (12 if half.lower() == "pm" else 0)


def _where(place: _Place, values: Sequence[object], zones: Zones) -> tuple[float, float]:
    if place.zone is not None:
        return _zone_centroid(place, values[0], zones)
    lat = _coordinate(values[0], str(place.lat), 90.0, "latitude")
    lng = _coordinate(values[1], str(place.lng), 180.0, "longitude")
    if lat == 0.0 and lng == 0.0:
        raise _BadRow(
            "zero_coordinates",
            f"{place.lat}=0, {place.lng}=0 ((0, 0) is how taxi data says the place is unknown)",
        )
    return (lat, lng)


def _coordinate(value: object, column: str, limit: float, axis: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _BadRow("missing_coordinate", f"{column} is empty")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _BadRow("bad_coordinate", f"{column}={value!r} is not a number") from None
    if math.isnan(number):
        raise _BadRow("missing_coordinate", f"{column} is NaN")
    if math.isinf(number):
        raise _BadRow("bad_coordinate", f"{column}={value!r} is not finite")
    if not -limit <= number <= limit:
        raise _BadRow(
            f"{axis}_out_of_range", f"{column}={value!r} is outside [-{limit:g}, {limit:g}]"
        )
    return number


def _zone_centroid(place: _Place, value: object, zones: Zones) -> tuple[float, float]:
    key = _zone_key(value)
    if key is None:
        raise _BadRow("missing_zone", f"{place.zone} is empty")
    centroid = zones.get(key)
    if centroid is None:
        raise _BadRow("unknown_zone", f"{place.zone}={value!r} is not in the zone table")
    return centroid


def _zone_key(value: object) -> str | None:
    """A zone id compared as text: "132", "132.0", "0132" and 132 are the same zone."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text.casefold()
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text.casefold()


# -- building the demand ---------------------------------------------------------------------


def _build(path: Path, kept: _Kept, time_scale: float, window: tuple[float, float] | None) -> Trace:
    if not kept.rows:
        raise TraceError(_nothing_usable(path, kept))
    kept.rows.sort(key=itemgetter(0))  # stable: equal times keep the file's order
    first_us = kept.rows[0][0]
    start, end = window if window is not None else (0.0, math.inf)
    requests = []
    for us, pickup, dropoff in kept.rows:
        offset = (us - first_us) / 1_000_000
        if start <= offset < end:
            requests.append(Request((offset - start) / time_scale, pickup, dropoff))
    if not requests:
        span = (kept.rows[-1][0] - first_us) / 1_000_000
        raise TraceError(
            f"{path}: no request in the window [{start:g}, {end:g}) s; the trace spans {span:g} s"
        )
    skipped = sum(kept.reasons.values())
    return Trace(
        requests=requests,
        rows=kept.read,
        skipped=skipped,
        skipped_reasons=dict(sorted(kept.reasons.items())),
        source=str(path),
        first_time=_EPOCH + timedelta(microseconds=first_us) + timedelta(seconds=start),
        outside_window=len(kept.rows) - len(requests),
    )


def _nothing_usable(path: Path, kept: _Kept) -> str:
    if kept.read == 0:
        return f"{path}: no data rows (only a header)"
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(kept.reasons.items()))
    return f"{path}: no usable row among {kept.read} data rows ({reasons})"


# -- the zone table --------------------------------------------------------------------------


def _read_zone_table(path: Path) -> Zones:
    """Zone id -> centroid (lat, lng), from a CSV with columns zone (or LocationID), lat, lng."""
    if not path.name.lower().endswith(CSV_SUFFIXES):
        raise TraceError(f"{path}: a zone table is a CSV file (.csv or .csv.gz)")
    _check_file(path, "zone table")
    rows = _csv_rows(path)
    header = _csv_header(path, rows)
    at = _zone_table_columns(path, header)
    table: Zones = {}
    for number, row in enumerate(rows, start=1):
        key, centroid = _zone_row(
            path, number, [row[i] if i < len(row) else None for i in at], header, at
        )
        if key in table and table[key] != centroid:
            raise TraceError(
                f"{path}: zone {row[at[0]]!r} is listed twice, with different centroids"
            )
        table[key] = centroid
    if not table:
        raise TraceError(f"{path}: the zone table has no zones")
    return table


def _zone_table_columns(path: Path, names: Sequence[str]) -> list[int]:
    header = _index_header(names)
    found = {key: _find(header, aliases) for key, aliases in ZONE_TABLE_COLUMNS.items()}
    missing = [
        f"{key} ({' or '.join(ZONE_TABLE_COLUMNS[key])})"
        for key, name in found.items()
        if name is None
    ]
    if missing:
        raise TraceError(
            f"{path}: the zone table has no {', no '.join(missing)} column; header: {_shown(names)}"
        )
    return [list(names).index(str(found[key])) for key in ZONE_TABLE_COLUMNS]


def _zone_row(
    path: Path, number: int, values: list[str | None], header: list[str], at: list[int]
) -> tuple[str, tuple[float, float]]:
    try:
        key = _zone_key(values[0])
        if key is None:
            raise _BadRow("missing_zone", f"{header[at[0]]} is empty")
        lat = _coordinate(values[1], header[at[1]], 90.0, "latitude")
        lng = _coordinate(values[2], header[at[2]], 180.0, "longitude")
    except _BadRow as bad:
        raise TraceError(
            f"{path}: zone table data row {number} (1-based, header not counted): "
            f"{bad.reason.replace('_', ' ')}: {bad.detail}"
        ) from None
    return key, (lat, lng)


# -- writing ---------------------------------------------------------------------------------


def write_demand(path: Path, requests: Sequence[Request], start: datetime) -> None:
    """Write ``requests`` in our own format: CSV (``.csv``, ``.csv.gz``) or Parquet by suffix.

    ``request_time`` is ``start + at_s`` in UTC to the millisecond (a naive ``start`` is UTC):
    ISO 8601 text in CSV, a ``timestamp[ms, UTC]`` in Parquet; coordinates have 6 decimals.
    The file is replaced atomically (written beside it, then renamed).
    """
    kind = _kind_of(path)
    start_us = _datetime_us(start)
    times_ms = [(start_us + round(r.at_s * 1_000_000) + 500) // 1000 for r in requests]
    with replacing(path) as temporary:
        if kind == "csv":
            _write_csv(temporary, path, requests, times_ms)
        else:
            _write_parquet(temporary, requests, times_ms)


def _iso_ms(ms: int) -> str:
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_csv(
    temporary: Path, path: Path, requests: Sequence[Request], times_ms: list[int]
) -> None:
    with _open_text(temporary, "w", zipped=path.name.lower().endswith(".gz")) as text:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(OUR_COLUMNS)
        for request, ms in zip(requests, times_ms, strict=True):
            (plat, plng), (dlat, dlng) = request.pickup, request.dropoff
            writer.writerow(
                (_iso_ms(ms), f"{plat:.6f}", f"{plng:.6f}", f"{dlat:.6f}", f"{dlng:.6f}")
            )


def _write_parquet(temporary: Path, requests: Sequence[Request], times_ms: list[int]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def coordinates(side: str, axis: int) -> object:
        return pa.array([round(getattr(r, side)[axis], 6) for r in requests], pa.float64())

    table = pa.table(
        {
            "request_time": pa.array(times_ms, pa.timestamp("ms", tz="UTC")),
            "pickup_lat": coordinates("pickup", 0),
            "pickup_lng": coordinates("pickup", 1),
            "dropoff_lat": coordinates("dropoff", 0),
            "dropoff_lng": coordinates("dropoff", 1),
        }
    )
    pq.write_table(table, temporary)


# -- naming a demand -------------------------------------------------------------------------


def demand_hash(requests: Sequence[Request]) -> str:
    """SHA-256 (hex) of the demand's canonical text: one line a request,
    ``at_s`` to the millisecond and coordinates to 6 decimals."""
    digest = hashlib.sha256()
    for r in requests:
        (plat, plng), (dlat, dlng) = r.pickup, r.dropoff
        digest.update(f"{r.at_s:.3f},{plat:.6f},{plng:.6f},{dlat:.6f},{dlng:.6f}\n".encode())
    return digest.hexdigest()
