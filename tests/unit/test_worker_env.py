"""A worker process started by another process gets that process's settings, all of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from dispatch.adapters.kafka.processes import worker_env
from dispatch.settings import MarketConfig, Settings


def test_a_worker_started_by_another_process_has_every_one_of_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPATCH_CHECKPOINT_EVERY_EVENTS", "7")  # not to leak through
    monkeypatch.delenv("DISPATCH_HANDOFF_AFTER_S", raising=False)
    market = MarketConfig(name="c", shard=0, lat=37.77, lng=-122.42, radius_km=10, shards=2)
    settings = Settings(
        kafka_bootstrap="127.0.0.1:9", topic_prefix="p", shards=2, markets=[market],
        handoff_after_s=12.5, checkpoint_every_events=3, offer_timeout_s=9.0,
    )  # fmt: skip

    for key, value in worker_env(settings).items():
        monkeypatch.setenv(key, value)

    assert Settings() == settings


def test_a_setting_turned_off_is_not_turned_on_by_the_starting_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPATCH_HANDOFF_AFTER_S", "5")
    settings = Settings(kafka_bootstrap="127.0.0.1:9", handoff_after_s=0)

    for key, value in worker_env(settings).items():
        monkeypatch.setenv(key, value)

    assert Settings().handoff_after_s == 0


def test_a_worker_gets_the_kafka_password_itself_not_its_masked_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:9",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="dispatch-worker",
        kafka_password=SecretStr("s3cret"),
    )

    env = worker_env(settings)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    assert env["DISPATCH_KAFKA_PASSWORD"] == "s3cret"
    assert Settings() == settings


FARES = {
    "markets": {"c": {"currency": "EUR", "products": {"xl": {
        "base": "2.50", "per_km": "1.1234", "per_min": "0.3", "minimum": "7"}}}},
    "elsewhere": {"currency": "JPY", "products": {"standard": {
        "base": "500", "per_km": "300", "per_min": "50", "minimum": "700"}}},
}  # fmt: skip


def test_a_worker_gets_the_fare_rules_as_they_were_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    market = MarketConfig(name="c", shard=0, lat=37.77, lng=-122.42, radius_km=10)
    (tmp_path / "fares.json").write_text(json.dumps(FARES))
    given = Settings(kafka_bootstrap="127.0.0.1:9", markets=[market], fares=FARES)
    from_file = Settings(
        kafka_bootstrap="127.0.0.1:9", markets=[market], fares_file=tmp_path / "fares.json"
    )
    for key, value in worker_env(given).items():
        monkeypatch.setenv(key, value)
    assert Settings() == given

    env = worker_env(from_file)
    assert "DISPATCH_FARES_FILE" not in env  # the rules travel as read, not as a path
    monkeypatch.delenv("DISPATCH_FARES")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings().fares == from_file.fares == given.fares
