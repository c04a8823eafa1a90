"""Wrapped keys on the real broker (docs/PRIVACY.md, "Wrapped keys"): ``dispatch keys
status --kafka`` counts the keys topic's live keys by how they are kept and refuses a topic
holding keys under a KEK not configured, with the reason; ``rewrap`` is refused on Kafka;
an API instance without the KEK is refused at start, not served with erased fields."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap
from dispatch.adapters.kafka.keystore import KafkaKeyStore
from dispatch.adapters.kafka.topics import Topics
from dispatch.bootstrap import build_runtime
from dispatch.cli import app
from dispatch.domain.ids import new_id
from dispatch.privacy import KeyWrapError
from dispatch.settings import Settings

pytestmark = pytest.mark.kafka
KEK = os.urandom(32)
KEKS = json.dumps({"kek-k": base64.urlsafe_b64encode(KEK).decode()})


def keys(topics: Any, *args: str, keks: str = "") -> Any:
    env = {"DISPATCH_TOPIC_PREFIX": topics.prefix, "DISPATCH_SHARDS": str(topics.partitions),
           "DISPATCH_KEY_ENCRYPTION_KEYS": keks}  # fmt: skip
    return CliRunner().invoke(app, ["keys", *args, "--kafka", topics.bootstrap], env=env)


def test_status_counts_the_topics_keys_and_refuses_keys_under_a_kek_not_configured(
    kafka_topics: Any,
) -> None:
    name = Topics(kafka_topics.prefix).subject_keys
    plain = KafkaKeyStore(kafka_topics.bootstrap, name, kafka_topics.partitions)
    wrapped = KafkaKeyStore(kafka_topics.bootstrap, name, kafka_topics.partitions,
                            wrap=AesGcmKeyWrap({"kek-k": KEK}, "kek-k"))  # fmt: skip
    try:
        plain.create(new_id(0))
        erased = plain.create(new_id(1)).subject
        plain.erase(erased)
        for i in range(2):
            wrapped.create(new_id(i))
    finally:
        plain.close()
        wrapped.close()
    result = keys(kafka_topics, "status", "--json", keks=KEKS)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["wrapped"] == {"kek-k": 2} and found["not_wrapped"] == 1
    assert found["erased"] == 1 and found["where"] == f"topic {name}"
    refused = keys(kafka_topics, "status")
    assert refused.exit_code == 2 and "'kek-k'" in refused.output


def test_rewrap_is_refused_on_kafka_with_the_reason(kafka_topics: Any) -> None:
    env = {"DISPATCH_KAFKA_BOOTSTRAP": kafka_topics.bootstrap, "DISPATCH_KEY_ENCRYPTION_KEYS": KEKS}
    result = CliRunner().invoke(app, ["keys", "rewrap"], env=env)
    assert result.exit_code == 2 and "embedded data dir only" in result.output


def test_an_api_instance_without_the_kek_is_refused_at_start(
    kafka_topics: Any, tmp_path: Any
) -> None:
    store_a_wrapped_key(kafka_topics)
    settings = Settings(kafka_bootstrap=kafka_topics.bootstrap, topic_prefix=kafka_topics.prefix,
                        shards=kafka_topics.partitions, data_dir=tmp_path)  # fmt: skip
    with pytest.raises(KeyWrapError, match="kek-k"):
        build_runtime(settings)
    with_kek = settings.model_copy(update={"key_encryption_keys": SecretStr(KEKS)})
    runtime = build_runtime(with_kek)
    runtime.stop()


def test_a_simulator_following_hints_on_kafka_opens_them_or_is_refused_at_start(
    kafka_topics: Any,
) -> None:
    """``--hints follow`` on Kafka reads each hint's centre, sealed under its driver's key,
    with the subject-keys topic (docs/PRIVACY.md, "Place crossings and hints"); a process
    that cannot read that topic is refused before the run, with the reason."""
    from dispatch.adapters.crypto.aesgcm import AesGcmCipher
    from dispatch.privacy import PersonalData
    from dispatch.simulator.kafka import HintsUnreadable, _hint_opener

    name = Topics(kafka_topics.prefix).subject_keys
    store = KafkaKeyStore(kafka_topics.bootstrap, name, kafka_topics.partitions)
    try:
        key = store.create(new_id(0))
        token = PersonalData(AesGcmCipher(), store).seal(key, "lat", 37.79)
    finally:
        store.close()
    settings = Settings(kafka_bootstrap=kafka_topics.bootstrap, topic_prefix=kafka_topics.prefix,
                        shards=kafka_topics.partitions)  # fmt: skip
    opener = _hint_opener(settings)
    try:
        assert opener.open(token, "lat") == 37.79
    finally:
        opener.keys.close()
    elsewhere = settings.model_copy(update={"topic_prefix": "no-such-topics"})
    with pytest.raises(HintsUnreadable, match="read on that topic"):
        _hint_opener(elsewhere)
    store_a_wrapped_key(kafka_topics)
    with pytest.raises(HintsUnreadable, match="DISPATCH_KEY_ENCRYPTION_KEYS"):
        _hint_opener(settings)  # the topic is read, but a key is wrapped under a KEK it lacks


def test_a_running_store_that_meets_a_key_it_cannot_unwrap_stops_and_makes_no_second_key(
    kafka_topics: Any,
) -> None:
    """A key record wrapped under a KEK this process lacks, read while it runs: the store
    fails every later call with the reason, and never takes the subject for keyless (a
    second key would make the first's data read as erased)."""
    name = Topics(kafka_topics.prefix).subject_keys
    plain = KafkaKeyStore(kafka_topics.bootstrap, name, kafka_topics.partitions, refresh_s=0.0)
    wrapped = KafkaKeyStore(kafka_topics.bootstrap, name, kafka_topics.partitions,
                            wrap=AesGcmKeyWrap({"kek-k": KEK}, "kek-k"))  # fmt: skip
    try:
        made = wrapped.create(new_id(1))
        with pytest.raises(KeyWrapError, match="kek-k"):
            plain.get(made.subject, made.kid)
        for call in (lambda: plain.create(made.subject), lambda: plain.erased(new_id(0))):
            with pytest.raises(KeyWrapError, match="reads no further"):
                call()
        assert wrapped.get(made.subject, made.kid) == made.key  # one key, still the first
    finally:
        plain.close()
        wrapped.close()


def store_a_wrapped_key(kafka_topics: Any) -> None:
    """A key of a new subject on the keys topic, wrapped under ``KEK``."""
    name = Topics(kafka_topics.prefix).subject_keys
    wrapped = KafkaKeyStore(kafka_topics.bootstrap, name, kafka_topics.partitions,
                            wrap=AesGcmKeyWrap({"kek-k": KEK}, "kek-k"))  # fmt: skip
    try:
        wrapped.create(new_id(0))
    finally:
        wrapped.close()
