"""The alert rules (deploy/prometheus/alerts.yml) and the Grafana dashboard
(deploy/grafana/dispatch.json) in the repository: promtool checks the rules and runs their
unit tests, every alert says what it means and what to do, and every metric they use is one
the API or a worker exposes (so a renamed metric cannot leave an alert that never fires).

promtool comes from Debian's `prometheus` package (scripts/ci-prometheus.sh installs it).
Without it the promtool test is skipped, except when ``CI`` is set: then it fails."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from api_world import World
from prometheus_client import CollectorRegistry
from tools import tool

from dispatch.adapters.kafka.worker import WorkerStats
from dispatch.cli.worker_metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dispatch.json"
USED = re.compile(r"\bdispatch_[a-z_]+\b")


def promtool() -> str:
    return tool("promtool", "scripts/ci-prometheus.sh (Debian's prometheus)")


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    tool = promtool()
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_alert_says_what_it_means_and_what_to_do() -> None:
    found = rules()
    assert len(found) >= 8
    for rule in found:
        notes = rule.get("annotations", {})
        assert notes.get("summary") and len(notes.get("description", "")) > 20, rule["alert"]
        assert rule["labels"]["severity"] in ("page", "warn"), rule["alert"]


def exposed(registry: CollectorRegistry) -> set[str]:
    """The sample names a registry's families give, whether or not any was observed yet."""
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{part}" for part in ("bucket", "count", "sum")}
        else:
            names.add(family.name)
    return names


def worker_registry() -> CollectorRegistry:
    matcher = SimpleNamespace(pending={}, available=set())
    stand_in = SimpleNamespace(
        stats=WorkerStats(lag={("dispatch.commands", 0): 0}, restored={0: 1.0}),
        shards={0: SimpleNamespace(worker=SimpleNamespace(matcher=matcher))},
        batch_observers=[],
    )
    return WorkerMetrics(stand_in).registry  # type: ignore[arg-type]


def test_every_metric_the_rules_and_the_dashboard_use_is_exposed(world: World) -> None:
    api = world.client.app.state.ctx.metrics.registry  # type: ignore[attr-defined]
    known = exposed(worker_registry()) | exposed(api)
    expressions = [rule["expr"] for rule in rules()]
    dashboard = json.loads(DASHBOARD.read_text())
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in expressions for name in USED.findall(expr)}
    assert used, "no metric found in the expressions"
    assert used - known == set(), f"used but not exposed: {sorted(used - known)}"
