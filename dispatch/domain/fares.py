"""Fares: the products, the currencies' minor units, a fare rule and the price function.

Money is never a float: amounts are ``Decimal`` and the arithmetic is exact (fractions),
rounded once, at the end, to the currency's minor unit (docs/MARKETPLACE.md):

    total = max(minimum, base + per_km * km + per_min * minutes) * surge

with ``km = distance_m / 1000`` and ``minutes = duration_s / 60`` (whole metres and whole
seconds), rounded half up: the total in minor units is ``floor(exact * 10**digits + 1/2)``;
the minimum applied when the metered part (base and rates) is below it.
A rule's ``base`` and ``minimum`` are whole minor units, so with a surge of at least 1 a
total is never below the minimum, and a longer or slower trip never costs less.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from dispatch.domain.products import DEFAULT_CATALOG

# A product's name (``products.PRODUCT_NAME``): the catalog is configuration, so any
# well-formed name may be one; ``PRODUCTS``: the default catalog's.
Product = str
PRODUCTS: tuple[Product, ...] = DEFAULT_CATALOG.names

# ISO 4217 minor units (digits after the point) of the currencies a rule may use: the major
# currencies and those of the large ride-hailing markets. ISO's, even where cash has no
# minor unit (IDR, HUF, TWD, COP, PKR: 2); a rule may still use whole amounts only.
# fmt: off
_TWO = ("AED", "ARS", "AUD", "AZN", "BDT", "BGN", "BRL", "CAD", "CHF", "CNY", "COP", "CRC",
        "CZK", "DKK", "DOP", "EGP", "EUR", "GBP", "GEL", "GHS", "GTQ", "HKD", "HUF", "IDR",
        "ILS", "INR", "KES", "KZT", "LKR", "MAD", "MXN", "MYR", "NGN", "NOK", "NZD", "PEN",
        "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "SAR", "SEK", "SGD", "THB", "TRY", "TWD",
        "TZS", "UAH", "USD", "UYU", "ZAR")
_NONE = ("CLP", "ISK", "JPY", "KRW", "PYG", "RWF", "UGX", "VND", "XAF", "XOF")
_THREE = ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")
# fmt: on
MINOR_DIGITS: Mapping[str, int] = {
    **dict.fromkeys(_TWO, 2),
    **dict.fromkeys(_NONE, 0),
    **dict.fromkeys(_THREE, 3),
}
AMOUNTS = ("base", "per_km", "per_min", "minimum")  # a rule's, in this order
NO_SURGE = Decimal("1.00")
MAX_SURGE = Decimal(10)


@dataclass(frozen=True, slots=True)
class FareRule:
    """How one product is priced in one market: amounts in the currency's major unit
    (``base`` and ``minimum`` in whole minor units, not both 0; the rates may be finer)."""

    currency: str
    base: Decimal
    per_km: Decimal
    per_min: Decimal
    minimum: Decimal

    def __post_init__(self) -> None:
        if self.currency not in MINOR_DIGITS:
            known = ", ".join(sorted(MINOR_DIGITS))
            raise ValueError(f"currency {self.currency[:8]!r} is not one of {known}")
        for name in AMOUNTS:
            amount: Decimal = getattr(self, name)
            if not amount.is_finite() or amount.is_signed():  # -0 too: one zero, one rule
                raise ValueError(f"{name} must be a finite amount of at least 0, got {amount}")
        if self.base + self.minimum == 0:
            raise ValueError(
                "base or minimum must be above 0: with both 0 a trip of no length is free "
                "(and every trip is, if the rates are 0 too)"
            )
        digits = MINOR_DIGITS[self.currency]
        for name in ("base", "minimum"):
            amount = getattr(self, name)
            if amount != amount.quantize(Decimal(1).scaleb(-digits)):
                raise ValueError(
                    f"{name} {amount} {self.currency} is not a whole number of minor units "
                    f"({digits} digits after the point)"
                )


@dataclass(frozen=True, slots=True)
class Fare:
    """A priced trip: its total (the currency's minor digits) and whether the minimum set
    it (the metered fare, base and rates, was below it)."""

    total: Decimal
    minimum_applied: bool


def fare(rule: FareRule, distance_m: int, duration_s: int, surge: Decimal = NO_SURGE) -> Fare:
    """The fare of a trip of ``distance_m`` metres and ``duration_s`` seconds under ``rule``
    at ``surge`` (1 to ``MAX_SURGE``)."""
    if type(distance_m) is not int or type(duration_s) is not int:
        raise ValueError("a trip is priced by whole metres and whole seconds")
    if distance_m < 0 or duration_s < 0:
        raise ValueError(f"a trip cannot be {distance_m} m or {duration_s} s long")
    if not surge.is_finite() or not 1 <= surge <= MAX_SURGE:
        raise ValueError(f"surge must be from 1 to {MAX_SURGE}, got {surge}")
    metered = (
        Fraction(rule.base)
        + Fraction(rule.per_km) * Fraction(distance_m, 1000)
        + Fraction(rule.per_min) * Fraction(duration_s, 60)
    )
    minimum = Fraction(rule.minimum)
    exact = max(minimum, metered) * Fraction(surge)
    return Fare(round_half_up(exact, MINOR_DIGITS[rule.currency]), metered < minimum)


def price(rule: FareRule, distance_m: int, duration_s: int, surge: Decimal = NO_SURGE) -> Decimal:
    """The total of ``fare``: with the currency's minor digits."""
    return fare(rule, distance_m, duration_s, surge).total


def round_half_up(amount: Fraction, digits: int) -> Decimal:
    """``amount`` (at least 0) to ``digits`` after the point, a half rounded up."""
    minor = math.floor(amount * 10**digits + Fraction(1, 2))
    return Decimal(minor).scaleb(-digits)


def amount_text(amount: Decimal, currency: str) -> str:
    """``amount`` as text with ``currency``'s minor digits, or more when it has more
    (``2.5`` USD is ``"2.50"``, a rate of ``0.355`` is ``"0.355"``)."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(MINOR_DIGITS[currency], -exponent if isinstance(exponent, int) else 0)
    return f"{amount:.{places}f}"


def from_minor(minor: int, currency: str) -> Decimal:
    """``minor`` minor units of ``currency`` as an amount with its minor digits."""
    return Decimal(minor).scaleb(-MINOR_DIGITS[currency])


def minor_units(amount: Decimal, currency: str) -> int:
    """``amount`` of ``currency`` in whole minor units (it must be one)."""
    scaled = amount.scaleb(MINOR_DIGITS[currency])
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} is not a whole number of minor units")
    return int(scaled)
