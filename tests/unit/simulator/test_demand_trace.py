"""Demand traces: trip files (ours, NYC TLC, Chicago; CSV and Parquet) read as the simulator's
demand, written back, and every way a file can be refused."""

from __future__ import annotations

import gzip
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.simulator.results import Request
from dispatch.simulator.trace import TraceError, demand_hash, read_trace, write_demand

START = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
TIMES_SQ = (40.758, -73.9855)
JFK = (40.6413, -73.7781)


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def our_csv(path: Path, *rows: str) -> Path:
    return write_csv(path, "request_time,pickup_lat,pickup_lng,dropoff_lat,dropoff_lng", *rows)


GOOD = "2024-03-01T08:00:00Z,40.758,-73.9855,40.6413,-73.7781"


# -- our own format ----------------------------------------------------------------------------

coordinate = st.tuples(
    st.floats(min_value=-89.9, max_value=89.9), st.floats(min_value=-179.9, max_value=179.9)
).filter(lambda p: abs(p[0]) > 1e-3 or abs(p[1]) > 1e-3)  # (0, 0) means "unknown"
demands = st.lists(
    st.builds(Request, st.floats(min_value=0, max_value=86_400 * 3), coordinate, coordinate),
    min_size=1,
    max_size=20,
).map(lambda requests: sorted(requests, key=lambda r: r.at_s))


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
@settings(max_examples=25, deadline=None)
@given(requests=demands)
def test_written_demand_reads_back_as_the_same_requests(
    tmp_path_factory: pytest.TempPathFactory, suffix: str, requests: list[Request]
) -> None:
    path = tmp_path_factory.mktemp("demand") / f"demand{suffix}"
    write_demand(path, requests, START)
    trace = read_trace(path)

    first = requests[0].at_s  # a trace starts at its first request
    assert len(trace.requests) == len(requests) == trace.rows
    assert abs(trace.first_time - (START + timedelta(seconds=first))) <= timedelta(milliseconds=1)
    for read, written in zip(trace.requests, requests, strict=True):
        assert read.at_s == pytest.approx(written.at_s - first, abs=1.001e-3)
        got_all, want_all = (*read.pickup, *read.dropoff), (*written.pickup, *written.dropoff)
        for got, want in zip(got_all, want_all, strict=True):
            assert got == pytest.approx(want, abs=1e-6)


def test_written_csv_is_iso_utc_milliseconds_with_six_decimals(tmp_path: Path) -> None:
    path = tmp_path / "demand.csv"
    write_demand(path, [Request(1.23456, (40.1234567, -73.5), (40.0, -73.0))], START)

    lines = path.read_text().splitlines()
    assert lines == [
        "request_time,pickup_lat,pickup_lng,dropoff_lat,dropoff_lng",
        "2024-03-01T08:00:01.235Z,40.123457,-73.500000,40.000000,-73.000000",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["demand.csv"]  # no temporary left


def test_demand_hash_is_stable_across_a_rewrite_and_sees_any_change(tmp_path: Path) -> None:
    path = tmp_path / "demand.csv"
    requests = [Request(0.0, TIMES_SQ, JFK), Request(12.3456, JFK, TIMES_SQ)]
    write_demand(path, requests, START)
    once = read_trace(path)
    write_demand(path, once.requests, once.first_time)
    twice = read_trace(path)

    assert demand_hash(twice.requests) == demand_hash(once.requests)
    moved = [Request(0.0, TIMES_SQ, JFK), Request(12.3456, JFK, (40.7581, -73.9855))]
    assert demand_hash(moved) != demand_hash(requests)
    assert len(demand_hash(requests)) == 64


# -- public trip data ----------------------------------------------------------------------------

YELLOW_HEADER = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,"
    "pickup_longitude,pickup_latitude,RatecodeID,store_and_fwd_flag,dropoff_longitude,"
    "dropoff_latitude,payment_type,fare_amount"
)


def test_reads_a_tlc_yellow_taxi_csv_by_its_real_column_names(tmp_path: Path) -> None:
    path = tmp_path / "yellow_tripdata_2015-01.csv.gz"
    rows = (
        "2,2015-01-15 19:05:39,2015-01-15 19:23:42,1,1.59,-73.993896,40.750111,1,N,"
        "-73.974785,40.750618,1,12",
        "1,2015-01-15 19:05:30,2015-01-15 19:20:00,1,3.30,-74.001648,40.724243,1,N,"
        "-73.994415,40.759109,1,14.5",
    )
    path.write_bytes(gzip.compress(("\n".join((YELLOW_HEADER, *rows)) + "\n").encode()))

    trace = read_trace(path)

    assert trace.first_time == datetime(2015, 1, 15, 19, 5, 30, tzinfo=UTC)
    assert trace.requests == [  # sorted by time: the second row came first
        Request(0.0, (40.724243, -74.001648), (40.759109, -73.994415)),
        Request(9.0, (40.750111, -73.993896), (40.750618, -73.974785)),
    ]
    assert (trace.rows, trace.skipped, trace.source) == (2, 0, str(path))


def test_reads_a_chicago_trips_file_with_its_am_pm_times(tmp_path: Path) -> None:
    header = (
        "Trip ID,Taxi ID,Trip Start Timestamp,Trip End Timestamp,Trip Seconds,Trip Miles,"
        "Pickup Community Area,Dropoff Community Area,Fare,Pickup Centroid Latitude,"
        "Pickup Centroid Longitude,Dropoff Centroid Latitude,Dropoff Centroid Longitude"
    )
    path = write_csv(
        tmp_path / "Taxi_Trips.csv",
        header,
        "a1,t1,01/31/2023 11:45:00 PM,02/01/2023 12:00:00 AM,900,3.1,8,32,12.25,"
        "41.899602111,-87.633308037,41.878865584,-87.625192142",
        "a2,t2,02/01/2023 12:00:00 AM,02/01/2023 12:15:00 AM,600,1.0,32,8,7.5,"
        "41.878865584,-87.625192142,41.899602111,-87.633308037",
        "a3,t3,02/01/2023 12:15:00 PM,02/01/2023 12:30:00 PM,600,1.0,76,8,40,,,"
        "41.899602111,-87.633308037",
    )

    trace = read_trace(path, skip_bad_rows=True)

    assert trace.first_time == datetime(2023, 1, 31, 23, 45, tzinfo=UTC)
    assert [r.at_s for r in trace.requests] == [0.0, 900.0]  # 12 AM is midnight
    assert trace.requests[0].pickup == (41.899602111, -87.633308037)
    assert trace.skipped_reasons == {"missing_coordinate": 1}  # Chicago hides some places


def test_prefers_the_request_time_to_the_pickup_time(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "fhvhv.csv",
        "pickup_datetime,request_datetime,pickup_lat,pickup_lng,dropoff_lat,dropoff_lng",
        "2024-03-01 08:10:00,2024-03-01 08:00:00,40.758,-73.9855,40.6413,-73.7781",
        "2024-03-01 08:12:00,2024-03-01 08:05:00,40.758,-73.9855,40.6413,-73.7781",
    )

    trace = read_trace(path)

    assert trace.first_time == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert [r.at_s for r in trace.requests] == [0.0, 300.0]


def test_times_with_offsets_become_utc_and_plain_numbers_are_seconds(tmp_path: Path) -> None:
    zoned = our_csv(
        tmp_path / "zoned.csv",
        "2024-03-01T09:00:00+01:00,40.758,-73.9855,40.6413,-73.7781",
        "2024-03-01T08:00:30.5,40.758,-73.9855,40.6413,-73.7781",
    )
    seconds = our_csv(
        tmp_path / "seconds.csv",
        "100,40.758,-73.9855,40.6413,-73.7781",
        "160.25,40.758,-73.9855,40.6413,-73.7781",
    )

    assert read_trace(zoned).first_time == START
    assert [r.at_s for r in read_trace(zoned).requests] == [0.0, 30.5]
    assert [r.at_s for r in read_trace(seconds).requests] == [0.0, 60.25]


def test_equal_times_keep_the_file_order(tmp_path: Path) -> None:
    path = our_csv(
        tmp_path / "ties.csv",
        "2024-03-01T08:00:05Z,1,1,2,2",
        "2024-03-01T08:00:00Z,3,3,4,4",
        "2024-03-01T08:00:05Z,5,5,6,6",
    )

    assert [r.pickup for r in read_trace(path).requests] == [(3, 3), (1, 1), (5, 5)]


# -- zones ---------------------------------------------------------------------------------------

ZONES = "LocationID,lat,lng\n132,40.6413,-73.7781\n230,40.758,-73.9855\n"


def test_a_zone_file_takes_each_zones_centroid_from_the_zone_table(tmp_path: Path) -> None:
    zones = tmp_path / "zones.csv"
    zones.write_text(ZONES)
    path = tmp_path / "yellow_tripdata_2024-01.parquet"
    times = [datetime(2024, 1, 1, 0, 0, 10), datetime(2024, 1, 1, 0, 1, 10)]
    table = pa.table(
        {
            "VendorID": [1, 2],
            "tpep_pickup_datetime": pa.array(times, pa.timestamp("us")),
            "PULocationID": [230, 132],
            "DOLocationID": [132, 999],  # 999: no such zone
            "fare_amount": [70.0, 12.0],
        }
    )
    pq.write_table(table, path)

    trace = read_trace(path, zones=zones, skip_bad_rows=True)

    assert trace.requests == [Request(0.0, TIMES_SQ, JFK)]
    assert trace.skipped_reasons == {"unknown_zone": 1}
    assert trace.first_time == datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC)


def test_a_zone_file_without_a_zone_table_says_to_pass_one(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "fhv.csv",
        "dispatching_base_num,pickup_datetime,dropOff_datetime,PUlocationID,DOlocationID",
        "B00001,2024-01-01 00:15:00,2024-01-01 00:30:00,230,132",
    )

    with pytest.raises(TraceError, match=r"zones .*'PUlocationID'.*--zones FILE"):
        read_trace(path)


# -- time scale and window -----------------------------------------------------------------------


def hourly(tmp_path: Path) -> Path:
    """Requests at 0, 600, ..., 3000 s of trace time."""
    rows = [
        f"{(START + timedelta(seconds=s)).isoformat()},40.758,-73.9855,40.6413,-73.7781"
        for s in range(0, 3600, 600)
    ]
    return our_csv(tmp_path / "hour.csv", *rows)


def test_a_time_scale_of_two_plays_the_trace_twice_as_fast(tmp_path: Path) -> None:
    trace = read_trace(hourly(tmp_path), time_scale=2.0)

    assert [r.at_s for r in trace.requests] == [0.0, 300.0, 600.0, 900.0, 1200.0, 1500.0]


def test_a_window_keeps_its_trace_seconds_and_starts_at_zero(tmp_path: Path) -> None:
    trace = read_trace(hourly(tmp_path), window=(600.0, 1800.0), time_scale=2.0)

    assert [r.at_s for r in trace.requests] == [0.0, 300.0]  # trace 600 and 1200 s
    assert trace.first_time == START + timedelta(seconds=600)
    assert (trace.rows, trace.outside_window) == (6, 4)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"time_scale": 0.0}, "time_scale"),
        ({"time_scale": -1.0}, "time_scale"),
        ({"time_scale": math.nan}, "time_scale"),
        ({"time_scale": math.inf}, "time_scale"),
        ({"window": (10.0, 10.0)}, "window end"),
        ({"window": (-5.0, 10.0)}, "window start"),
        ({"window": (0.0, math.nan)}, "window end"),
    ],
)
def test_a_bad_time_scale_or_window_is_refused(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        read_trace(hourly(tmp_path), **options)  # type: ignore[arg-type]


def test_a_window_with_no_request_says_how_long_the_trace_is(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"no request in the window \[4000, 5000\).*3000 s"):
        read_trace(hourly(tmp_path), window=(4000.0, 5000.0))


# -- bad rows ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason", "value"),
    [
        (",40.758,-73.9855,40.6413,-73.7781", "missing time", "request_time is empty"),
        ("yesterday,40.758,-73.9855,40.6413,-73.7781", "bad time", "'yesterday'"),
        ("2024-03-01T08:01:00Z,,-73.9855,40.6413,-73.7781", "missing coordinate", "pickup_lat"),
        ("2024-03-01T08:01:00Z,40.758,north,40.6413,-73.7781", "bad coordinate", "'north'"),
        ("2024-03-01T08:01:00Z,91,-73.9855,40.6413,-73.7781", "latitude out of range", "'91'"),
        ("2024-03-01T08:01:00Z,40.758,-181,40.6413,-73.7781", "longitude out of range", "'-181'"),
        ("2024-03-01T08:01:00Z,40.758,-73.9855,0,0", "zero coordinates", "dropoff_lat=0"),
        ("120,40.758,-73.9855,40.6413,-73.7781", "mixed time kinds", "'120'"),
    ],
)
def test_a_bad_row_is_refused_with_its_row_number_reason_and_value(
    tmp_path: Path, row: str, reason: str, value: str
) -> None:
    path = our_csv(tmp_path / "bad.csv", GOOD, GOOD, row, GOOD)

    with pytest.raises(TraceError) as refused:
        read_trace(path)

    message = str(refused.value)
    assert str(path) in message
    assert "data row 3 (1-based, header not counted)" in message
    assert reason in message
    assert value in message


def test_skipping_bad_rows_counts_them_by_reason(tmp_path: Path) -> None:
    path = our_csv(
        tmp_path / "mixed.csv",
        GOOD,
        "2024-03-01T08:01:00Z,0,0,40.6413,-73.7781",
        "2024-03-01T08:02:00Z,0.0,0.0,40.6413,-73.7781",
        "not a time,40.758,-73.9855,40.6413,-73.7781",
        "2024-03-01T08:03:00Z,40.758,-73.9855,95,-73.7781",
        "2024-03-01T08:04:00Z,40.758,-73.9855,40.6413",  # short row: dropoff_lng missing
        "2024-03-01T08:05:00Z,40.758,-73.9855,40.6413,-73.7781",
    )

    trace = read_trace(path, skip_bad_rows=True)

    assert [r.at_s for r in trace.requests] == [0.0, 300.0]
    assert (trace.rows, trace.skipped) == (7, 5)
    assert trace.skipped_reasons == {
        "bad_time": 1,
        "latitude_out_of_range": 1,
        "missing_coordinate": 1,
        "zero_coordinates": 2,
    }


def test_a_file_of_only_bad_rows_has_no_usable_row_even_when_skipping(tmp_path: Path) -> None:
    path = our_csv(tmp_path / "all_bad.csv", "x,40.758,-73.9855,40.6413,-73.7781")

    with pytest.raises(TraceError, match=r"no usable row among 1 data rows \(bad_time: 1\)"):
        read_trace(path, skip_bad_rows=True)


# -- files that cannot be read -------------------------------------------------------------------


def test_files_that_cannot_be_read_are_refused_with_the_reason(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.csv.gz"
    good_rows = our_csv(tmp_path / "good.csv", *[GOOD] * 5000).read_bytes()
    damaged.write_bytes(gzip.compress(good_rows)[:-40])  # cut short
    not_parquet = tmp_path / "trips.parquet"
    not_parquet.write_text("request_time,pickup_lat\n")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header_only = our_csv(tmp_path / "header_only.csv")
    cases = {
        damaged: r"cannot be read as gzip-compressed CSV",
        not_parquet: r"not a readable Parquet file",
        tmp_path / "missing.csv": r"no such trace file",
        empty: r"empty",
        header_only: r"no data rows",
        tmp_path / "trips.json": r"unsupported file type.*CSV \(\.csv, \.csv\.gz\) or Parquet",
    }

    for path, reason in cases.items():
        with pytest.raises(TraceError, match=reason):
            read_trace(path, skip_bad_rows=True)  # damage is no bad row to skip


def test_a_header_without_a_time_or_pickup_column_is_refused(tmp_path: Path) -> None:
    no_time = write_csv(tmp_path / "no_time.csv", "pickup_lat,pickup_lng,dropoff_lat,dropoff_lng")
    no_pickup = write_csv(tmp_path / "no_pickup.csv", "request_time,dropoff_lat,dropoff_lng")

    with pytest.raises(TraceError, match=r"no time column; expected one of request_time"):
        read_trace(no_time)
    with pytest.raises(TraceError, match=r"no pickup columns"):
        read_trace(no_pickup)


def test_a_zone_table_without_centroids_is_refused(tmp_path: Path) -> None:
    lookup = tmp_path / "taxi_zone_lookup.csv"
    lookup.write_text('"LocationID","Borough","Zone","service_zone"\n1,"EWR","Newark","EWR"\n')
    path = write_csv(tmp_path / "green.csv", "lpep_pickup_datetime,PULocationID,DOLocationID")

    with pytest.raises(TraceError, match=r"zone table has no lat .*no lng"):
        read_trace(path, zones=lookup)
