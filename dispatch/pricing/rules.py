"""The fare rules in force: per market and product, with the version that names them.

The rules come from the settings (``DISPATCH_FARES``, validated there) or, unset, are
``DEFAULT_RULES`` (in US dollars) in every configured market: meant for the default
market, so with markets of one's own and no rules ``defaults_misfit`` says why not (the API
refuses to start in production, and warns in development). ``version`` is a content hash: the same
rules (amounts compared as numbers, ``2.5`` as ``2.50``) always have the same version, and
any change to any rule, the currency, its minor digits or the price formula (``FORMULA``)
gives another; a quote names the version it was priced with, so a fare can be explained
from the rules kept under that version (``dispatch fares rules`` prints the rules in force
and theirs).

The pickup's market prices a trip, wherever it ends (``FareBook.rule_for``). A pickup
outside every market is priced by the ``elsewhere`` rules when they are configured, and
refused (``no_fare_rules``) when they are not: they are not by default.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dispatch.domain.fares import AMOUNTS, MINOR_DIGITS, FareRule, Product
from dispatch.domain.products import in_catalog_order
from dispatch.settings import (
    DEFAULT_MARKETS,
    FareRulesConfig,
    FaresConfig,
    MarketConfig,
    Settings,
)

# The price function's own version: changing how a total is computed from the rules
# (dispatch.domain.fares.price) must change this, so that every version changes.
FORMULA = "max(minimum, base + per_km*km + per_min*min) * surge, half up; 1"

DEFAULT_RULES = FareRulesConfig.model_validate(
    {
        "currency": "USD",
        "products": {
            "standard": {"base": "2.50", "per_km": "1.10", "per_min": "0.30", "minimum": "7.00"},
            "xl": {"base": "4.00", "per_km": "1.80", "per_min": "0.45", "minimum": "10.00"},
            # the same price as standard: an accessible vehicle costs its rider no more
            "accessible": {
                "base": "2.50", "per_km": "1.10", "per_min": "0.30", "minimum": "7.00"
            },
        },
    }
)  # fmt: skip


class FareError(Exception):
    """No fare for this trip: ``code`` (``no_fare_rules``, ``product_not_offered``,
    ``trip_too_long``) and the reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True, slots=True)
class FareBook:
    """The fare rules of every market (by name) and of ``elsewhere``, and their version."""

    markets: Mapping[str, Mapping[str, FareRule]]
    elsewhere: Mapping[str, FareRule] | None
    version: str

    @property
    def has_rules(self) -> bool:
        """Whether any pickup can be priced: some market has rules, or ``elsewhere`` is set.
        Not so only when no market is configured (``DISPATCH_MARKETS`` empty) and
        ``DISPATCH_FARES`` has no ``elsewhere``: every configured market has rules (the
        defaults, when ``DISPATCH_FARES`` is unset)."""
        return bool(self.markets) or self.elsewhere is not None

    def rule_for(self, market: str | None, product: Product) -> FareRule:
        """The rule of ``product`` in ``market`` (None: a pickup outside every market)."""
        if market is None:
            if self.elsewhere is None:
                raise FareError(
                    "no_fare_rules",
                    "the pickup is outside every market, and there are no fare rules for "
                    "places outside them (DISPATCH_FARES has no 'elsewhere')",
                )
            rules, where = self.elsewhere, "outside the markets"
        else:
            where = f"in market {market!r}"
            found = self.markets.get(market)
            if found is None:
                raise FareError("no_fare_rules", f"there are no fare rules {where}")
            rules = found
        rule = rules.get(product)
        if rule is None:
            offered = ", ".join(in_catalog_order(rules))
            raise FareError(
                "product_not_offered", f"{product!r} is not offered {where} (offered: {offered})"
            )
        return rule


def fares_of(settings: Settings) -> FaresConfig:
    """The configured fare rules, or ``DEFAULT_RULES`` in every market."""
    if settings.fares is not None:
        return settings.fares
    return default_fares(settings.markets)


def rules_source(settings: Settings) -> str:
    """Where the rules in force come from: ``DISPATCH_FARES``, ``DISPATCH_FARES_FILE`` or
    ``defaults``."""
    if settings.fares is None:
        return "defaults"
    return "DISPATCH_FARES_FILE" if settings.fares_file is not None else "DISPATCH_FARES"


def defaults_misfit(settings: Settings) -> str | None:
    """Why the default rules should not price these markets (they are not the default
    ones, and ``DISPATCH_FARES`` is unset), or None. The default market with a service
    area or places of its own is still the default one: the same city, priced alike."""
    if settings.fares is not None or _where(settings.markets) == _where(DEFAULT_MARKETS):
        return None
    names = ", ".join(repr(market.name) for market in settings.markets)
    return (
        f"DISPATCH_FARES is unset but DISPATCH_MARKETS has markets of its own ({names}): "
        "each would be priced by the default fare rules, in US dollars; set DISPATCH_FARES "
        "(or DISPATCH_FARES_FILE) with each market's rules (docs/MARKETPLACE.md)"
    )


def _where(markets: Sequence[MarketConfig]) -> list[dict[str, object]]:
    """The markets as places on the map (what their prices depend on)."""
    return [m.model_dump(exclude={"service_area", "places"}) for m in markets]


def default_fares(markets: Sequence[MarketConfig]) -> FaresConfig:
    return FaresConfig(markets={market.name: DEFAULT_RULES for market in markets})


def fare_book(config: FaresConfig) -> FareBook:
    """The rules of ``config`` and their version."""
    elsewhere = config.elsewhere
    return FareBook(
        {name: _rules(rules) for name, rules in config.markets.items()},
        _rules(elsewhere) if elsewhere is not None else None,
        rules_version(config),
    )


def rules_version(config: FaresConfig) -> str:
    """``sha256:`` and the first 16 hex digits of the hash of ``canonical(config)``."""
    text = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def canonical(config: FaresConfig) -> dict[str, Any]:
    """The rules as JSON that only their content decides: amounts as plain numbers in text
    (``"2.5"``), each currency with its minor digits (what a total is rounded to), products
    in the vocabulary's order, the formula's version with them."""
    elsewhere = config.elsewhere
    return {
        "formula": FORMULA,
        "markets": {name: _canonical(rules) for name, rules in sorted(config.markets.items())},
        "elsewhere": _canonical(elsewhere) if elsewhere is not None else None,
    }


def _canonical(rules: FareRulesConfig) -> dict[str, Any]:
    products = {
        product: {name: _amount(getattr(rules.products[product], name)) for name in AMOUNTS}
        for product in in_catalog_order(rules.products)
    }
    currency = rules.currency
    return {"currency": currency, "minor_digits": MINOR_DIGITS[currency], "products": products}


def _amount(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _rules(config: FareRulesConfig) -> dict[str, FareRule]:
    return {
        product: FareRule(config.currency, fare.base, fare.per_km, fare.per_min, fare.minimum)
        for product, fare in config.products.items()
    }
