"""docker-compose.yml cannot run here (no Docker engine): parse it and keep it consistent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dispatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_kafka_4_in_kraft_mode_with_a_health_check() -> None:
    kafka = compose()["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "healthcheck" in kafka


def test_engine_services_use_only_settings_the_engine_knows() -> None:
    services = compose()["services"]
    known = {f"DISPATCH_{name.upper()}" for name in Settings.model_fields}
    for name in ("topics", "worker", "api"):
        env = services[name]["environment"]
        unknown = {
            k
            for k in env
            if k.startswith("DISPATCH_") and not k.startswith("DISPATCH_AUTH_") and k not in known
        }
        assert unknown == set(), f"{name} sets unknown settings {unknown}"
        assert env["DISPATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_engine_services_run_real_cli_commands() -> None:
    from typer.main import get_command

    from dispatch.cli import app

    cli = get_command(app)
    services = compose()["services"]
    for name in ("topics", "worker", "api"):
        first = services[name]["command"][0]
        assert first in cli.commands, f"{name} runs unknown command {first}"  # type: ignore[attr-defined]


def test_workers_and_api_start_after_the_topics_exist() -> None:
    services = compose()["services"]
    for name in ("worker", "api"):
        assert services[name]["depends_on"]["topics"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
