"""A read record's JSON form, what it keeps of a request, and how `replay audit --reads`
merges reads into the trail of changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatch.read_audit import (
    MAX_PARAM_CHARS,
    MAX_PARAMS,
    ReadRecord,
    canonical_path,
    kept_query,
)
from dispatch.replay.audit import READ_KIND, AuditRecord, with_reads

VIC, ADA = "id-vic", "id-ada"


def _read(at: float, who: str = VIC, **path: str) -> ReadRecord:
    return ReadRecord(
        at, who, who[3:], "viewer", "GET /rides/{ride_id}", path, {"after": "0:1"}, f"r{at}", 2
    )


def _change(at: float, who: str = VIC) -> AuditRecord:
    return AuditRecord(at, f"0:{int(at)}", "Ride.CancelledByOperator", "ride", who, "", "", {})


def test_a_record_survives_its_json_form() -> None:
    record = _read(12.5, ride_id="r-1", after="0:3")
    assert ReadRecord.from_json(record.as_json()) == record


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        ({"route": None}, "not a string"),
        ({"at": "yesterday"}, "at is not a number"),
        ({"at": True}, "at is not a number"),
        ({"path": ["ride_id"]}, "path or query is not an object"),
        ({"query": "after=1"}, "path or query is not an object"),
        ({"omitted": 1.5}, "omitted is not a whole number"),
    ],
)
def test_a_damaged_record_is_refused_with_the_reason(broken: dict[str, object], said: str) -> None:
    data = _read(1.0).as_json() | broken
    with pytest.raises(ValueError, match=said):
        ReadRecord.from_json(data)


def test_a_record_without_a_field_names_it() -> None:
    data = _read(1.0).as_json()
    del data["operator_name"]
    with pytest.raises(ValueError, match="operator_name"):
        ReadRecord.from_json(data)


def test_the_routes_own_query_parameters_are_kept_first_and_always() -> None:
    sent = [(f"a{i}", "1") for i in range(30)] + [("lat", "37.7"), ("lng", "-122.4")]
    kept, omitted = kept_query(sent, own=("lat", "lng", "limit"))
    assert list(kept)[:2] == ["lat", "lng"] and len(kept) == MAX_PARAMS
    assert omitted == 30 - (MAX_PARAMS - 2)


def test_a_repeated_own_parameter_keeps_its_first_value_and_long_values_are_cut() -> None:
    sent = [("lat", "1"), ("lat", "2"), ("x" * 300, "y" * 300)]
    kept, omitted = kept_query(sent, own=("lat",))
    assert kept == {"lat": "1", "x" * MAX_PARAM_CHARS: "y" * MAX_PARAM_CHARS}
    assert omitted == 0


def test_path_ids_are_kept_in_their_canonical_form() -> None:
    ride = "0a1b2c3d-0000-4000-8000-00000000abcd"
    assert canonical_path({"ride_id": ride.upper()}) == {"ride_id": ride}
    assert canonical_path({"ride_id": ride.replace("-", "")}) == {"ride_id": ride}
    assert canonical_path({"ride_id": "not-an-id"}) == {"ride_id": "not-an-id"}


def test_reads_are_merged_into_the_changes_by_time_and_filtered_by_operator() -> None:
    changes = [_change(2.0), _change(4.0, ADA), _change(6.0)]
    reads = [_read(5.0, ride_id="r-5"), _read(1.0, ADA), _read(3.0)]  # kept out of order
    merged = list(with_reads(iter(changes), reads))
    assert [(r.at, r.kind) for r in merged] == [
        (1.0, READ_KIND),
        (2.0, "Ride.CancelledByOperator"),
        (3.0, READ_KIND),
        (4.0, "Ride.CancelledByOperator"),
        (5.0, READ_KIND),
        (6.0, "Ride.CancelledByOperator"),
    ]
    assert merged[4].aggregate_id == "r-5" and merged[4].where == ""
    assert merged[4].details == {
        "route": "GET /rides/{ride_id}",
        "path": {"ride_id": "r-5"},
        "query": {"after": "0:1"},
        "omitted": 2,
        "request_id": "r5.0",
    }
    only_ada = list(with_reads(iter([c for c in changes if c.operator_id == ADA]), reads, ADA))
    assert [(r.at, r.operator_id) for r in only_ada] == [(1.0, ADA), (4.0, ADA)]


def test_the_embedded_store_syncs_each_record_to_disk(tmp_path: Path) -> None:
    from dispatch.adapters.sqlite.readaudit import SqliteReadAudit

    store = SqliteReadAudit(tmp_path / "reads.sqlite")
    db = store._open()
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_the_embedded_store_refuses_a_record_it_cannot_write(tmp_path: Path) -> None:
    from dispatch.adapters.sqlite.readaudit import SqliteReadAudit
    from dispatch.read_audit import ReadAuditUnavailable

    store = SqliteReadAudit(tmp_path / "reads.sqlite")
    store._open().execute("DROP TABLE operator_reads")  # the file damaged under it
    with pytest.raises(ReadAuditUnavailable, match=r"reads\.sqlite"):
        store.record(_read(1.0))
    store.close()
