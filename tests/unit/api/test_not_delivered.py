"""A write the log did not acknowledge is never answered 2xx, not even 202 "pending": it is
503 with a reason and Retry-After, so the client retries with its Idempotency-Key (issue
#16, fault 5: every 2xx write is in the log)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from api_world import PICKUP, SECRET
from fastapi.testclient import TestClient
from kafka.errors import KafkaTimeoutError
from pydantic import SecretStr

from dispatch.adapters.kafka.transport import MIN_DELIVERY_S, KafkaTransport
from dispatch.api import AuthSettings, create_app
from dispatch.api.context import ApiOptions
from dispatch.bootstrap import build_runtime
from dispatch.outcome_mailbox import OutcomeMailbox
from dispatch.ports import NotDelivered
from dispatch.settings import Settings


def test_a_write_the_log_did_not_acknowledge_is_503_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = build_runtime(Settings(data_dir=tmp_path, shards=1), clock=time.time)

    def undelivered(command_id: str, timeout_s: float, fingerprint: str | None = None) -> Any:
        raise NotDelivered(f"the log did not acknowledge command {command_id} within 10 s")

    monkeypatch.setattr(runtime.transport, "wait_outcome", undelivered)
    auth = AuthSettings(secret=SecretStr(SECRET), environment="production")
    app = create_app(runtime, auth, ApiOptions(command_timeout_s=1.0))
    with TestClient(app) as client:
        r = client.post(
            "/drivers",
            json={"name": "d", "home": PICKUP},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"] == "unavailable"
    assert "retry with the same Idempotency-Key" in r.json()["reason"]


class UnflushedProducer:
    def flush(self, timeout: float | None = None) -> None:
        self.timeout = timeout
        raise KafkaTimeoutError("Timeout after waiting for 10 secs.")


def kafka_transport_with(producer: Any) -> KafkaTransport:
    transport = KafkaTransport.__new__(KafkaTransport)
    transport._producer = producer
    transport._mailbox = OutcomeMailbox(keep=10)
    return transport


def test_the_kafka_bus_says_not_delivered_when_the_log_does_not_acknowledge() -> None:
    producer = UnflushedProducer()
    transport = kafka_transport_with(producer)
    with pytest.raises(NotDelivered, match="did not acknowledge command c-1"):
        transport.wait_outcome("c-1", 0.5)
    assert producer.timeout == MIN_DELIVERY_S  # a short wait still gives the log its time
