"""The idempotency window's pure rules: when a record is live, where it can be, how old a
key is, and which keys are refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from idempotency_keys import uuid7

from dispatch.domain.command_record import (
    COMMAND_NAMESPACE,
    key_refusal,
    key_time,
    record_ids,
    record_is_live,
)
from dispatch.domain.ids import derived_id

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
DAY = 86_400.0


def test_a_record_is_live_until_it_is_one_window_old() -> None:
    assert record_is_live(T0, T0, DAY)
    assert record_is_live(T0, T0 + timedelta(seconds=DAY, microseconds=-1), DAY)
    assert not record_is_live(T0, T0 + timedelta(seconds=DAY), DAY)


def test_a_record_written_by_a_clock_that_ran_ahead_is_live() -> None:
    assert record_is_live(T0 + timedelta(hours=1), T0, DAY)


def test_a_record_id_changes_with_the_period_and_the_window_but_not_within_a_period() -> None:
    start = datetime.fromtimestamp((T0.timestamp() // DAY) * DAY, UTC)
    first = record_ids(3, "c-1", start, DAY)
    later = record_ids(3, "c-1", start + timedelta(seconds=DAY - 1), DAY)
    next_period = record_ids(3, "c-1", start + timedelta(seconds=DAY), DAY)

    assert later.current == first.current
    assert next_period.current != first.current
    assert next_period.previous == first.current
    assert record_ids(3, "c-1", start, DAY / 2).current not in set(first)
    assert record_ids(3, "c-2", start, DAY).current != first.current


def test_a_record_id_is_in_its_shard_and_the_legacy_id_is_the_one_written_before() -> None:
    ids = record_ids(5, "c-1", T0, DAY)

    assert all(i.int >> 112 == 5 for i in ids)
    assert ids.legacy == derived_id(5, COMMAND_NAMESPACE, "c-1")


def test_a_uuid7_key_tells_its_age_after_the_caller_prefix_or_alone() -> None:
    key = uuid7(T0)

    assert key_time(f"0000a56d-68a6-404a-8281-f8b936ad2d6d:{key}") == T0
    assert key_time(str(key)) == T0
    assert key_time(f"register-driver:{str(key).upper()}") == T0


def test_keys_that_are_not_a_canonical_uuid7_do_not_tell_their_age() -> None:
    for key in (str(uuid.uuid4()), "ride-1", uuid7(T0).hex, f"{uuid7(T0)}x", ""):
        assert key_time(f"caller:{key}") is None


def test_a_uuid7_key_is_refused_once_older_than_the_window_less_the_skew() -> None:
    key = f"c:{uuid7(T0)}"

    assert key_refusal(key, T0 + timedelta(seconds=DAY - 61), DAY) is None
    code, reason = key_refusal(key, T0 + timedelta(seconds=DAY - 60), DAY) or ("", "")
    assert code == "idempotency_key_expired"
    assert "86340 s ago" in reason and "86400 s idempotency window" in reason


def test_a_uuid7_key_dated_ahead_of_the_clock_beyond_the_skew_is_refused() -> None:
    assert key_refusal(f"c:{uuid7(T0 + timedelta(seconds=60))}", T0, DAY) is None
    code, reason = key_refusal(f"c:{uuid7(T0 + timedelta(seconds=61))}", T0, DAY) or ("", "")
    assert code == "idempotency_key_invalid" and "61 s ahead" in reason


def test_the_skew_is_a_quarter_of_a_short_window() -> None:
    key = f"c:{uuid7(T0)}"

    assert key_refusal(key, T0 + timedelta(seconds=29), 40.0) is None
    assert key_refusal(key, T0 + timedelta(seconds=30), 40.0) is not None


def test_keys_that_do_not_tell_their_age_are_never_refused_for_it() -> None:
    assert key_refusal(f"c:{uuid.uuid4()}", T0 + timedelta(days=400), DAY) is None
