"""A child process given ``settings_environment(settings)`` reads the same settings as its
parent, whatever the parent's own environment says (``dispatch.settings_env``): the replay
CLI under the /ops time slider and the workers a simulator starts rely on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from dispatch.settings import MarketConfig, Settings
from dispatch.settings_env import settings_environment


def test_settings_given_by_a_caller_reach_the_child_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_TOPIC_PREFIX", "the-parents-own")
    monkeypatch.setenv("DISPATCH_KAFKA_USERNAME", "left-over")
    given = Settings(
        data_dir=tmp_path,
        kafka_bootstrap="127.0.0.1:1",
        topic_prefix="test-given",
        shards=3,
        h3_resolution=8,
        view_history_keep=5,
        kafka_password=SecretStr("s3cret"),
        kafka_username=None,
        markets=[MarketConfig(name="sf", shard=0, lat=37.77, lng=-122.42, radius_km=40, shards=2),
                 MarketConfig(name="oak", shard=2, lat=37.80, lng=-122.27, radius_km=10)],
    )  # fmt: skip

    env = settings_environment(given)
    for key in [k for k in os.environ if k.startswith("DISPATCH_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = Settings()

    assert child.model_dump() == given.model_dump()
    assert "DISPATCH_KAFKA_USERNAME" not in env  # unset here, unset there
    assert env["DISPATCH_KAFKA_PASSWORD"] == "s3cret"
