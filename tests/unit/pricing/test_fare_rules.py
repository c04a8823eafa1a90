"""Fare rules as versioned configuration (``DISPATCH_FARES``, ``dispatch.pricing.rules``):
invalid rules stop the settings with the reason; the version is the rules' content; the
pickup's market prices a trip; outside every market only ``elsewhere`` rules do."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dispatch.domain.fares import MINOR_DIGITS, FareRule
from dispatch.pricing import rules
from dispatch.pricing.rules import (
    DEFAULT_RULES,
    FareError,
    canonical,
    fare_book,
    fares_of,
    rules_version,
)
from dispatch.settings import FaresConfig, MarketConfig, Settings

SF = MarketConfig(name="sf", shard=0, lat=37.77, lng=-122.42, radius_km=40)
PARIS = MarketConfig(name="paris", shard=1, lat=48.86, lng=2.35, radius_km=30)
MARKETS = [SF, PARIS]
STANDARD = {"base": "2.50", "per_km": "1.10", "per_min": "0.30", "minimum": "7.00"}
EURO = {"base": "3", "per_km": "1.2", "per_min": "0.35", "minimum": "8"}


def fares(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "markets": {
            "sf": {"currency": "USD", "products": {"standard": STANDARD, "xl": STANDARD}},
            "paris": {"currency": "EUR", "products": {"standard": EURO}},
        }
    }
    return config | changes


def settings(config: Any, **kw: Any) -> Settings:
    return Settings(markets=MARKETS, shards=2, fares=config, **kw)


def problem(config: Any, **kw: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        settings(config, **kw)
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in raised.value.errors())


def test_rules_are_read_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_MARKETS", json.dumps([m.model_dump() for m in MARKETS]))
    monkeypatch.setenv("DISPATCH_SHARDS", "2")
    monkeypatch.setenv("DISPATCH_FARES", json.dumps(fares()))
    config = Settings().fares
    assert config is not None
    assert config.markets["paris"].products["standard"].per_min == Decimal("0.35")


def test_rules_are_read_from_a_file_too(tmp_path: Path) -> None:
    path = tmp_path / "fares.json"
    path.write_text(json.dumps(fares()))
    assert settings(None, fares_file=path).fares == settings(fares()).fares
    assert "not both" in problem(fares(), fares_file=path)
    assert "No such file" in problem(None, fares_file=tmp_path / "none.json")
    path.write_text("{not json")
    assert "not JSON" in problem(None, fares_file=path)


def test_json_numbers_are_read_exactly_never_as_floats(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """2.50000000000000001 is a float's 2.5: read as what it says, it has too many digits."""
    text = json.dumps(fares()).replace('"0.35"', "0.35").replace('"3"', "2.50000000000000001")
    monkeypatch.setenv("DISPATCH_MARKETS", json.dumps([m.model_dump() for m in MARKETS]))
    monkeypatch.setenv("DISPATCH_SHARDS", "2")
    monkeypatch.setenv("DISPATCH_FARES", text)
    with pytest.raises(ValidationError, match="no more than 4 decimal places"):
        Settings()
    monkeypatch.setenv("DISPATCH_FARES", text.replace("2.50000000000000001", "3"))
    assert Settings().fares == settings(fares()).fares  # 0.35, the number, is 0.35 exactly
    monkeypatch.delenv("DISPATCH_FARES")
    (tmp_path / "fares.json").write_text(text)
    assert "no more than 4 decimal places" in problem(None, fares_file=tmp_path / "fares.json")


def test_empty_variables_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_FARES", "")
    monkeypatch.setenv("DISPATCH_FARES_FILE", "")
    assert Settings().fares is None


def test_text_that_is_not_json_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISPATCH_FARES", "{markets: 1}")
    with pytest.raises(ValidationError, match="DISPATCH_FARES is not JSON"):
        Settings()


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (fares(markets={**fares()["markets"], "lyon": fares()["markets"]["paris"]}),
         "DISPATCH_FARES names markets that DISPATCH_MARKETS does not: 'lyon'"),
        (fares(markets={"sf": fares()["markets"]["sf"]}),
         "DISPATCH_FARES has no rules for the market(s) 'paris'"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "USD",
                                                    "products": {"limo": STANDARD}}}),
         "DISPATCH_FARES (sf) prices products that DISPATCH_PRODUCTS does not list: 'limo'"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "usd",
                                                    "products": {"xl": STANDARD}}}),
         "fares.markets.sf.currency: String should match pattern"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "XTS",
                                                    "products": {"xl": STANDARD}}}),
         "currency 'XTS' is not one of"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "USD", "products": {}}}),
         "fares.markets.sf.products: Dictionary should have at least 1 item"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "USD", "products": {
            "xl": STANDARD | {"base": "2.555"}}}}),
         "xl: base 2.555 USD is not a whole number of minor units"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "USD", "products": {
            "xl": STANDARD | {"per_km": -1}}}}),
         "fares.markets.sf.products.xl.per_km: Input should be greater than or equal to 0"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "USD", "products": {
            "xl": STANDARD | {"per_km": "0.00001"}}}}),
         "no more than 4 decimal places"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "USD", "products": {
            "xl": {k: v for k, v in STANDARD.items() if k != "minimum"}}}}),
         "fares.markets.sf.products.xl.minimum: Field required"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "USD", "products": {
            "xl": STANDARD | {"per_mile": "1"}}}}),
         "fares.markets.sf.products.xl.per_mile: Extra inputs are not permitted"),
        (fares(surge=2), "fares.surge: Extra inputs are not permitted"),
        (fares(markets={**fares()["markets"], "sf": {"currency": "USD", "products": {
            "xl": {"base": 0, "per_km": 0, "per_min": 0, "minimum": 0}}}}),
         "xl: base or minimum must be above 0"),
    ],
)  # fmt: skip
def test_invalid_rules_stop_the_settings_with_the_reason(config: Any, reason: str) -> None:
    assert reason in problem(config)


def test_a_markets_name_is_short_enough_for_a_quote_to_carry() -> None:
    assert MarketConfig(name="m" * 200, shard=0, lat=0, lng=0, radius_km=1)
    with pytest.raises(ValidationError, match="at most 200 characters"):
        MarketConfig(name="m" * 201, shard=0, lat=0, lng=0, radius_km=1)


def test_without_rules_every_market_has_the_default_ones() -> None:
    config = fares_of(Settings(markets=MARKETS, shards=2))
    assert config.markets == {"sf": DEFAULT_RULES, "paris": DEFAULT_RULES}
    assert config.elsewhere is None
    assert set(DEFAULT_RULES.products) == {"standard", "xl", "accessible"}


def test_the_version_is_the_rules_content() -> None:
    config = settings(fares()).fares
    assert config is not None
    version = rules_version(config)
    assert version.startswith("sha256:") and len(version) == len("sha256:") + 16
    # the same amounts written another way, and the products in another order
    same = fares()
    same["markets"]["sf"]["products"] = {
        "xl": {"base": 2.5, "per_km": "1.1", "per_min": "0.3", "minimum": 7},
        "standard": STANDARD,
    }
    assert rules_version(FaresConfig.model_validate(same)) == version
    for changed in (
        fares(elsewhere={"currency": "USD", "products": {"standard": STANDARD}}),
        fares(markets={**fares()["markets"], "paris": {"currency": "CHF",
                                                       "products": {"standard": EURO}}}),
        fares(markets={**fares()["markets"], "paris": {"currency": "EUR",
                                                       "products": {"xl": EURO}}}),
        fares(markets={**fares()["markets"], "paris": {"currency": "EUR", "products": {
            "standard": EURO | {"per_min": "0.36"}}}}),
    ):  # fmt: skip
        assert rules_version(FaresConfig.model_validate(changed)) != version


def paris_standard(**change: str) -> FaresConfig:
    paris = {"currency": "EUR", "products": {"standard": EURO | change}}
    return FaresConfig.model_validate(fares(markets={**fares()["markets"], "paris": paris}))


def test_a_signed_zero_is_zero_the_same_rule_and_version() -> None:
    config = paris_standard(per_min="-0.00")
    assert not config.markets["paris"].products["standard"].per_min.is_signed()
    assert rules_version(config) == rules_version(paris_standard(per_min="0"))


def test_the_currencies_of_the_large_markets_are_known_with_their_iso_minor_units() -> None:
    two = "AED SAR QAR EGP NGN KES COP PEN ARS IDR TWD PKR HUF RON USD EUR GBP BRL MXN INR"
    for currency in two.split():
        assert MINOR_DIGITS[currency] == 2, currency
    assert {c: MINOR_DIGITS[c] for c in ("JPY", "KRW", "CLP", "KWD", "BHD")} == {
        "JPY": 0, "KRW": 0, "CLP": 0, "KWD": 3, "BHD": 3,
    }  # fmt: skip


def test_the_version_hashes_each_currencys_minor_digits_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = FaresConfig.model_validate(fares())
    hashed = canonical(config)
    assert (hashed["markets"]["sf"]["minor_digits"], hashed["markets"]["paris"]["currency"]) == (
        2,
        "EUR",
    )
    version = rules_version(config)
    monkeypatch.setattr(rules, "MINOR_DIGITS", {**MINOR_DIGITS, "EUR": 3})
    assert rules_version(config) != version  # totals would be rounded otherwise


def test_the_pickups_market_prices_the_trip() -> None:
    book = fare_book(FaresConfig.model_validate(fares()))
    assert book.rule_for("paris", "standard") == FareRule(
        "EUR", Decimal(3), Decimal("1.2"), Decimal("0.35"), Decimal(8)
    )
    assert book.rule_for("sf", "xl").currency == "USD"


def test_a_product_a_market_does_not_offer_is_refused_with_the_reason() -> None:
    book = fare_book(FaresConfig.model_validate(fares()))
    with pytest.raises(FareError) as raised:
        book.rule_for("paris", "xl")
    assert raised.value.code == "product_not_offered"
    assert raised.value.reason == "'xl' is not offered in market 'paris' (offered: standard)"


def test_outside_every_market_only_rules_for_elsewhere_price_a_trip() -> None:
    book = fare_book(FaresConfig.model_validate(fares()))
    with pytest.raises(FareError) as raised:
        book.rule_for(None, "standard")
    assert raised.value.code == "no_fare_rules"
    assert "outside every market" in raised.value.reason
    elsewhere = {"currency": "USD", "products": {"standard": STANDARD}}
    book = fare_book(FaresConfig.model_validate(fares(elsewhere=elsewhere)))
    assert book.rule_for(None, "standard").minimum == Decimal(7)
    with pytest.raises(FareError, match="'xl' is not offered outside the markets"):
        book.rule_for(None, "xl")


def test_a_market_the_book_does_not_know_has_no_rules() -> None:
    book = fare_book(FaresConfig.model_validate(fares()))
    with pytest.raises(FareError, match="no fare rules in market 'lyon'"):
        book.rule_for("lyon", "standard")


def test_a_trip_from_one_priced_market_to_another_is_priced_by_its_pickups() -> None:
    """The terms a ride is priced on (``desk.terms_for``) name the pickup's market and its
    rule, wherever the drop-off is (docs/MARKETPLACE.md, "The pickup's market prices the
    trip")."""
    from dispatch.markets import MarketMap
    from dispatch.pricing.desk import terms_for

    book, markets = fare_book(FaresConfig.model_validate(fares())), MarketMap(MARKETS, 2)
    from_sf = terms_for(book, markets, (37.77, -122.42), "standard", 1.35)
    from_paris = terms_for(book, markets, (48.86, 2.35), "standard", 1.35)
    assert (from_sf.market, from_sf.rule.currency) == ("sf", "USD")
    assert (from_paris.market, from_paris.rule.currency) == ("paris", "EUR")
    assert from_paris.rule == book.rule_for("paris", "standard")
