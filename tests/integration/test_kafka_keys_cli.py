"""``dispatch keys status --kafka`` and ``rewrap`` against the real broker (docs/PRIVACY.md,
"Wrapped keys"): the keys topic's live keys counted by how they are kept, a topic holding
keys under a KEK not configured refused with the reason, and rewrap refused on Kafka."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from typer.testing import CliRunner

from dispatch.adapters.crypto.keywrap import AesGcmKeyWrap
from dispatch.adapters.kafka.keystore import KafkaKeyStore
from dispatch.adapters.kafka.topics import Topics
from dispatch.cli import app
from dispatch.domain.ids import new_id

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
