"""The price function (``dispatch.domain.fares.price``): exact arithmetic, rounded once,
half up, to the currency's minor unit; never below the minimum; a longer or slower trip
never costs less; a rule's amounts are checked when it is made."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.domain.fares import (
    MAX_SURGE,
    MINOR_DIGITS,
    Fare,
    FareRule,
    amount_text,
    fare,
    minor_units,
    price,
    round_half_up,
)

D = Decimal
STANDARD = FareRule("USD", D("2.50"), D("1.10"), D("0.30"), D("7.00"))

CURRENCIES = st.sampled_from(sorted(MINOR_DIGITS))
METRES = st.integers(0, 500_000)
SECONDS = st.integers(0, 20_000)
SURGES = st.decimals(1, MAX_SURGE, places=2)


@st.composite
def rules(draw: st.DrawFn) -> FareRule:
    currency = draw(CURRENCIES)
    digits = MINOR_DIGITS[currency]
    whole = st.decimals(0, 1000, places=digits)  # base and minimum: whole minor units
    rate = st.decimals(0, 100, places=4)
    base, minimum = draw(whole), draw(whole)
    if base + minimum == 0:  # not both 0: a trip is never free
        minimum = Decimal(1).scaleb(-digits)
    return FareRule(currency, base, draw(rate), draw(rate), minimum)


def test_a_trip_is_base_plus_distance_plus_time() -> None:
    # 2.50 + 1.10 x 5 km + 0.30 x 10 min
    assert price(STANDARD, 5_000, 600) == D("11.00")


def test_a_short_trip_costs_the_minimum() -> None:
    assert price(STANDARD, 0, 0) == D("7.00")
    assert price(STANDARD, 1_000, 60) == D("7.00")  # 2.50 + 1.10 + 0.30 = 3.90


def test_the_fare_says_whether_the_minimum_set_the_total() -> None:
    assert fare(STANDARD, 1_000, 60) == Fare(D("7.00"), minimum_applied=True)
    assert fare(STANDARD, 5_000, 600) == Fare(D("11.00"), minimum_applied=False)
    # 2.50 + 1.10 x 4.091 km is 7.0001, above the minimum by a hair; 4.090 km, 6.999
    assert fare(STANDARD, 4_091, 0) == Fare(D("7.00"), minimum_applied=False)
    assert fare(STANDARD, 4_090, 0) == Fare(D("7.00"), minimum_applied=True)
    exactly = FareRule("USD", D(2), D(1), D(0), D(7))  # 2 + 1 x 5 km: the minimum, not below
    assert fare(exactly, 5_000, 0) == Fare(D("7.00"), minimum_applied=False)


def test_amounts_are_written_in_their_currencys_digits_or_more() -> None:
    assert [amount_text(D(a), "USD") for a in ("2.5", "7", "0.355", "0")] == [
        "2.50", "7.00", "0.355", "0.00",
    ]  # fmt: skip
    assert (amount_text(D("500"), "JPY"), amount_text(D("0.5"), "KWD")) == ("500", "0.500")


def test_surge_multiplies_the_fare_after_the_minimum() -> None:
    assert price(STANDARD, 5_000, 600, D("1.25")) == D("13.75")
    assert price(STANDARD, 0, 0, D("1.5")) == D("10.50")


def test_the_total_is_rounded_half_up_to_the_minor_unit_once() -> None:
    half_cent = FareRule("USD", D("10.00"), D("0.005"), D(0), D(0))
    assert price(half_cent, 1_000, 0) == D("10.01")  # 10.005, half up
    assert price(half_cent, 999, 0) == D("10.00")  # 10.004995
    # a minute is 60 s: 1 s at 0.30 a minute is exactly 0.005
    per_min = FareRule("USD", D("1.00"), D(0), D("0.30"), D(0))
    assert price(per_min, 0, 1) == D("1.01")
    assert round_half_up(Fraction(25, 1000), 2) == D("0.03")
    assert round_half_up(Fraction(249999, 10**7), 2) == D("0.02")


def test_a_currency_without_cents_or_with_three_digits_is_rounded_to_its_own_unit() -> None:
    yen = FareRule("JPY", D(500), D(300), D(50), D(700))
    assert price(yen, 3_333, 444) == D(1870)  # 500 + 999.9 + 370 = 1869.9
    assert str(price(yen, 3_333, 444)) == "1870"
    dinar = FareRule("KWD", D("0.500"), D("0.1234"), D(0), D(0))
    assert str(price(dinar, 1_000, 0)) == "0.623"  # 0.6234


@given(rules(), METRES, METRES, SECONDS, SECONDS, SURGES)
def test_a_longer_or_slower_trip_never_costs_less(
    rule: FareRule, m1: int, m2: int, s1: int, s2: int, surge: Decimal
) -> None:
    short, long_ = sorted((m1, m2))
    quick, slow = sorted((s1, s2))
    assert price(rule, short, quick, surge) <= price(rule, long_, quick, surge)
    assert price(rule, short, quick, surge) <= price(rule, short, slow, surge)


@given(rules(), METRES, SECONDS, SURGES)
def test_a_fare_is_never_below_the_minimum_and_is_whole_minor_units(
    rule: FareRule, metres: int, seconds: int, surge: Decimal
) -> None:
    total = price(rule, metres, seconds, surge)
    assert total >= rule.minimum
    assert total.as_tuple().exponent == -MINOR_DIGITS[rule.currency]
    assert minor_units(total, rule.currency) == total.scaleb(MINOR_DIGITS[rule.currency])


@given(rules(), METRES, SECONDS, SURGES)
def test_the_total_is_the_exact_fare_rounded_half_up(
    rule: FareRule, metres: int, seconds: int, surge: Decimal
) -> None:
    metered = (
        Fraction(rule.base)
        + Fraction(rule.per_km) * metres / 1000
        + Fraction(rule.per_min) * seconds / 60
    )
    exact = max(Fraction(rule.minimum), metered) * Fraction(surge)
    priced = fare(rule, metres, seconds, surge)
    total = Fraction(priced.total)
    unit = Fraction(1, 10 ** MINOR_DIGITS[rule.currency])
    assert exact - unit / 2 < total <= exact + unit / 2  # the nearest, a half rounded up
    assert priced.minimum_applied is (metered < rule.minimum)


@given(rules(), METRES, SECONDS)
def test_no_surge_is_a_surge_of_one(rule: FareRule, metres: int, seconds: int) -> None:
    assert price(rule, metres, seconds) == price(rule, metres, seconds, D(1))


@pytest.mark.parametrize(
    ("metres", "seconds", "surge", "reason"),
    [
        (1.5, 0, D(1), "whole metres and whole seconds"),
        (0, 60.0, D(1), "whole metres and whole seconds"),
        (-1, 0, D(1), "cannot be -1 m"),
        (0, 0, D("0.9"), "surge must be from 1"),
        (0, 0, D("10.01"), "surge must be from 1"),
        (0, 0, D("NaN"), "surge must be from 1"),
    ],
)
def test_a_trip_that_cannot_be_priced_is_refused_with_the_reason(
    metres: int, seconds: int, surge: Decimal, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        price(STANDARD, metres, seconds, surge)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (("XXX", "1", "1", "1", "1"), "currency 'XXX' is not one of"),
        (("USD", "-1", "1", "1", "1"), "base must be a finite amount of at least 0"),
        (("USD", "1", "Infinity", "1", "1"), "per_km must be a finite amount"),
        (("USD", "1", "1", "-0", "1"), "per_min must be a finite amount of at least 0, got -0"),
        (("USD", "2.505", "1", "1", "1"), "base 2.505 USD is not a whole number of minor units"),
        (("JPY", "1", "1", "1", "700.5"), "minimum 700.5 JPY is not a whole number"),
        (("USD", "0", "0", "0", "0.00"), "base or minimum must be above 0"),
        (("USD", "0.00", "1.10", "0.30", "0"), "base or minimum must be above 0"),
    ],
)
def test_a_rule_that_is_not_one_is_refused_with_the_reason(
    rule: tuple[str, ...], reason: str
) -> None:
    currency, *amounts = rule
    with pytest.raises(ValueError, match=reason):
        FareRule(currency, *(D(a) for a in amounts))


def test_a_rule_charges_something_for_a_trip_of_no_length() -> None:
    assert price(FareRule("USD", D("0"), D("1"), D("0"), D("5")), 0, 0) == D("5.00")
    assert price(FareRule("USD", D("1"), D("1"), D("0"), D("0")), 0, 0) == D("1.00")


def test_rates_may_be_finer_than_the_minor_unit() -> None:
    assert FareRule("USD", D("2.50"), D("1.1234"), D("0.355"), D("7")).per_min == D("0.355")
