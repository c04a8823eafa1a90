"""``dispatch fares rules``: the rules in force and the version quotes name them by, as
text and as the JSON that is hashed; invalid rules are a usage error with the reason."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from dispatch.bootstrap import build_fare_desk
from dispatch.cli import app
from dispatch.settings import Settings
from dispatch.tokens import KeyRing

FARES = {
    "markets": {
        "san-francisco": {
            "currency": "JPY",
            "products": {"xl": {"base": 500, "per_km": "300.5", "per_min": 50, "minimum": 700}},
        }
    },
    "elsewhere": {
        "currency": "KWD",
        "products": {"standard": {"base": "0.5", "per_km": "0.1234", "per_min": 0, "minimum": 1}},
    },
}


def run(*args: str, fares: Any = None, markets: Any = None) -> Any:
    env = {"DISPATCH_FARES": json.dumps(fares) if fares is not None else ""}
    if markets is not None:
        env["DISPATCH_MARKETS"] = json.dumps(markets)
    return CliRunner().invoke(app, ["fares", "rules", *args], env=env)


def test_the_default_rules_are_printed_with_their_version() -> None:
    result = run()
    assert result.exit_code == 0, result.output
    version = build_fare_desk(Settings(), KeyRing({"k": "x"}, "k")).book.version
    assert result.stdout.splitlines() == [
        f"fare rules {version} (defaults)",
        "san-francisco (USD)",
        "  standard    base 2.50, per km 1.10, per minute 0.30, minimum 7.00",
        "  xl          base 4.00, per km 1.80, per minute 0.45, minimum 10.00",
        "  accessible  base 2.50, per km 1.10, per minute 0.30, minimum 7.00",
        "elsewhere: none (a pickup outside every market gets no quote)",
    ]


def test_the_default_rules_in_markets_of_ones_own_are_a_warning() -> None:
    paris = [{"name": "paris", "shard": 0, "lat": 48.86, "lng": 2.35, "radius_km": 30}]
    for args in ((), ("--json",)):
        result = run(*args, markets=paris)
        assert result.exit_code == 0, result.output
        warning = " ".join(result.stderr.split())
        assert warning.startswith("warning: DISPATCH_FARES is unset but DISPATCH_MARKETS has")
    assert json.loads(result.stdout)["markets"]["paris"]["currency"] == "USD"
    assert run().stderr == ""


def test_configured_rules_are_printed_in_their_currencys_digits() -> None:
    result = run(fares=FARES)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "san-francisco (JPY)",
        "  xl          base 500, per km 300.5, per minute 50, minimum 700",
        "elsewhere (KWD)",
        "  standard    base 0.500, per km 0.1234, per minute 0.000, minimum 1.000",
    ]


def test_the_json_is_what_the_version_hashes() -> None:
    result = run("--json", fares=FARES)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    desk = build_fare_desk(Settings(fares=FARES), KeyRing({"k": "x"}, "k"))
    assert printed["version"] == desk.book.version
    assert printed["markets"]["san-francisco"]["products"]["xl"]["per_km"] == "300.5"
    assert printed["elsewhere"]["products"]["standard"]["base"] == "0.5"
    assert printed["formula"].startswith("max(minimum, base + per_km*km + per_min*min) * surge")


@pytest.mark.parametrize("fares", [None, FARES])
def test_the_version_is_recomputed_from_the_printed_json(fares: Any) -> None:
    """docs/MARKETPLACE.md's recipe: the printed JSON without its version, compact with
    sorted keys, hashed with SHA-256, 16 hex digits."""
    printed = json.loads(run("--json", fares=fares).stdout)
    version = printed.pop("version")
    text = json.dumps(printed, sort_keys=True, separators=(",", ":"))
    assert version == "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def test_invalid_rules_are_a_usage_error_with_the_reason() -> None:
    result = run(fares={"markets": {"atlantis": FARES["elsewhere"]}})
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())  # the box rich draws around it
    assert "DISPATCH_FARES names markets that DISPATCH_MARKETS does not: 'atlantis'" in said
