"""A read record's JSON form, what it keeps of a request, and how `replay audit --reads`
merges reads into the trail of changes."""

from __future__ import annotations

import pytest

from dispatch.read_audit import MAX_PARAM_CHARS, MAX_PARAMS, ReadRecord, bounded_params
from dispatch.replay.audit import READ_KIND, AuditRecord, with_reads

VIC, ADA = "id-vic", "id-ada"


def _read(at: float, who: str = VIC, **params: str) -> ReadRecord:
    return ReadRecord(at, who, who[3:], "viewer", "GET /rides/{ride_id}", params, f"r{at}")


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
        ({"params": ["ride_id"]}, "params is not an object"),
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


def test_only_the_first_parameters_are_kept_each_cut_short() -> None:
    params = {f"p{i}": "x" * (MAX_PARAM_CHARS + 50) for i in range(MAX_PARAMS + 4)}
    kept = bounded_params(params)
    assert list(kept) == [f"p{i}" for i in range(MAX_PARAMS)]
    assert {len(v) for v in kept.values()} == {MAX_PARAM_CHARS}


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
        "params": {"ride_id": "r-5"},
        "request_id": "r5.0",
    }
    only_ada = list(with_reads(iter([c for c in changes if c.operator_id == ADA]), reads, ADA))
    assert [(r.at, r.operator_id) for r in only_ada] == [(1.0, ADA), (4.0, ADA)]
