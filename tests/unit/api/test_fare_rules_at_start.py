"""The API names the fare rules it prices with when it starts (version and source), and
will not price markets of one's own with the default rules (in US dollars): it refuses to
start in production and warns in development until DISPATCH_FARES is set."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from api_world import SECRET
from pydantic import SecretStr

from dispatch.api import AuthSettings, create_app
from dispatch.bootstrap import build_runtime
from dispatch.pricing.rules import defaults_misfit
from dispatch.settings import MarketConfig, Settings

PARIS = MarketConfig(name="paris", shard=0, lat=48.86, lng=2.35, radius_km=30)
EURO = {"base": "3", "per_km": "1.2", "per_min": "0.35", "minimum": "8"}
PARIS_FARES = {"markets": {"paris": {"currency": "EUR", "products": {"standard": EURO}}}}


def start(tmp_path: Path, environment: str, **settings: Any) -> Any:
    runtime = build_runtime(Settings(data_dir=tmp_path, shards=1, **settings), clock=time.time)
    auth = AuthSettings(secret=SecretStr(SECRET), environment=environment)  # type: ignore[arg-type]
    return create_app(runtime, auth)


def fare_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "dispatch.api.app" and "fare" in r.getMessage().lower()
    ]


def test_the_api_logs_the_default_rules_it_prices_with(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "dispatch.api.app")
    app = start(tmp_path, "production")
    version = app.state.ctx.fares.book.version
    assert fare_logs(caplog) == [("INFO", f"fare rules {version} (defaults)")]


def test_the_api_logs_the_configured_rules_and_where_they_come_from(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "dispatch.api.app")
    app = start(tmp_path / "a", "production", markets=[PARIS], fares=PARIS_FARES)
    version = app.state.ctx.fares.book.version
    (tmp_path / "fares.json").write_text('{"markets": {"paris": {"currency": "EUR", '
                                         '"products": {"standard": {"base": 3, "per_km": 1.2, '
                                         '"per_min": 0.35, "minimum": 8}}}}}')  # fmt: skip
    start(tmp_path / "b", "production", markets=[PARIS], fares_file=tmp_path / "fares.json")
    assert fare_logs(caplog) == [
        ("INFO", f"fare rules {version} (DISPATCH_FARES)"),
        ("INFO", f"fare rules {version} (DISPATCH_FARES_FILE)"),
    ]


def test_markets_of_ones_own_without_fare_rules_stop_the_api_in_production(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError) as raised:
        start(tmp_path, "production", markets=[PARIS])
    assert str(raised.value) == (
        "DISPATCH_FARES is unset but DISPATCH_MARKETS has markets of its own ('paris'): each "
        "would be priced by the default fare rules, in US dollars; set DISPATCH_FARES (or "
        "DISPATCH_FARES_FILE) with each market's rules (docs/MARKETPLACE.md); refusing to "
        "run in production"
    )


def test_markets_of_ones_own_without_fare_rules_are_a_warning_in_development(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "dispatch.api.app")
    app = start(tmp_path, "development", markets=[PARIS])
    assert app.state.ctx.fares.book.rule_for("paris", "standard").currency == "USD"
    (level, warning), info = fare_logs(caplog)
    assert level == "WARNING" and warning.startswith("DISPATCH_FARES is unset but")
    assert warning.endswith("; acceptable in development only")
    assert info == ("INFO", f"fare rules {app.state.ctx.fares.book.version} (defaults)")


def test_the_default_markets_need_no_fare_rules_and_set_rules_always_fit() -> None:
    assert defaults_misfit(Settings()) is None
    assert defaults_misfit(Settings(markets=[PARIS], fares=PARIS_FARES)) is None
    assert defaults_misfit(Settings(markets=[PARIS])) is not None
    sf = Settings().markets[0]
    assert defaults_misfit(Settings(markets=[sf.model_copy(update={"radius_km": 50})]))
