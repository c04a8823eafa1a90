"""A ride's final fare (``dispatch.domain.ride_fare``): the metered fare of the trip driven
by the terms recorded at request; a quoted ride pays its quoted total whatever the trip
took (upfront), its metered fare recorded beside it; never below the minimum; a longer or
slower trip never costs less; the terms read back from event data as they were written."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from dispatch.domain.fares import MAX_SURGE, FareRule, fare
from dispatch.domain.ride_fare import FareTerms, QuotedPrice, final_fare
from schemas.fares import FareTermsData, FinalFareData
from tests.unit.domain.test_fare_price import METRES, SECONDS, rules

D = Decimal
STANDARD = FareRule("USD", D("2.50"), D("1.10"), D("0.30"), D("7.00"))
QUOTE = QuotedPrice("q-1", D("11.00"), 5_000, 600, "straight_line", False)
QUOTED = FareTerms("standard", "san-francisco", "sha256:0123456789abcdef", STANDARD,
                   D("1.00"), QUOTE)  # fmt: skip
UNQUOTED = FareTerms("standard", "san-francisco", "sha256:0123456789abcdef", STANDARD, D("1"))
SURGES = st.decimals(1, MAX_SURGE, places=2)


@st.composite
def terms(draw: st.DrawFn) -> FareTerms:
    rule, surge = draw(rules()), draw(SURGES)
    quote = None
    if draw(st.booleans()):  # a quote priced by the same rule and surge, as the desk does
        metres, seconds = draw(METRES), draw(SECONDS)
        priced = fare(rule, metres, seconds, surge)
        quote = QuotedPrice("q", priced.total, metres, seconds, "straight_line",
                            priced.minimum_applied)  # fmt: skip
    return FareTerms("standard", None, "sha256:x", rule, surge, quote)


def test_a_ride_without_a_quote_pays_the_metered_fare() -> None:
    final = final_fare(UNQUOTED, 5_000, 600)
    assert (final.total, final.basis) == (D("11.00"), "metered")


def test_a_quoted_ride_pays_the_quoted_total_and_records_the_metered_fare() -> None:
    # 5.4 km and 11 min: 2.50 + 5.94 + 3.30 = 11.74, recorded beside the quoted 11.00
    final = final_fare(QUOTED, 5_400, 660)
    assert (final.total, final.basis, final.metered.total) == (D("11.00"), "quoted", D("11.74"))


def test_a_quoted_ride_pays_the_quoted_total_however_long_the_trip_took() -> None:
    # the review's case: 5 km, left running 50 min: metered 23.00, the rider pays 11.00
    final = final_fare(QUOTED, 5_000, 3_000)
    assert (final.total, final.basis, final.metered.total) == (D("11.00"), "quoted", D("23.00"))
    # 1 km and 2 min: the minimum, 7.00, far below; the rider still pays the quote
    final = final_fare(QUOTED, 1_000, 120)
    assert (final.total, final.basis, final.metered.minimum_applied) == (D("11.00"), "quoted",
                                                                         True)  # fmt: skip


@given(terms(), METRES, SECONDS)
def test_a_quoted_ride_always_pays_its_quote(t: FareTerms, metres: int, seconds: int) -> None:
    final = final_fare(t, metres, seconds)
    if t.quote is not None:
        assert (final.total, final.basis) == (t.quote.total, "quoted")
    else:
        assert (final.total, final.basis) == (final.metered.total, "metered")


@given(terms(), METRES, SECONDS)
def test_a_final_fare_is_never_below_the_minimum(t: FareTerms, metres: int, seconds: int) -> None:
    assert final_fare(t, metres, seconds).total >= t.rule.minimum


@given(terms(), METRES, SECONDS, st.integers(0, 50_000), st.integers(0, 5_000))
def test_a_longer_or_slower_trip_never_costs_less(
    t: FareTerms, metres: int, seconds: int, more_m: int, more_s: int
) -> None:
    fare_of = final_fare(t, metres, seconds).total
    assert final_fare(t, metres + more_m, seconds).total >= fare_of
    assert final_fare(t, metres, seconds + more_s).total >= fare_of


@given(terms())
def test_the_terms_read_back_from_event_data(t: FareTerms) -> None:
    assert FareTerms.from_data(t.to_data()) == t


def test_the_final_fare_as_event_data_says_how_it_was_reached() -> None:
    assert final_fare(QUOTED, 5_400, 660).to_data() == {
        "total": "11.00", "total_minor": 1100, "currency": "USD", "basis": "quoted",
        "metered": "11.74", "minimum_applied": False,
    }  # fmt: skip


@given(terms(), METRES, SECONDS)
def test_the_terms_and_the_final_fare_pass_the_wire_schemas(
    t: FareTerms, metres: int, seconds: int
) -> None:
    FareTermsData.model_validate(t.to_data())
    FinalFareData.model_validate(final_fare(t, metres, seconds).to_data())


def test_the_largest_fares_the_core_prices_pass_the_wire_schemas() -> None:
    # the rules' bounds (100,000 each), the surge's (10), the longest trip a count holds
    top = D(100_000)
    for currency in ("VND", "USD", "KWD"):
        rule = FareRule(currency, top, top, top, top)
        priced = fare(rule, 10**9, 10**9, MAX_SURGE)
        quote = QuotedPrice("q", priced.total, 10**9, 10**9, "straight_line", False)
        t = FareTerms("standard", None, "sha256:x", rule, MAX_SURGE, quote)
        FareTermsData.model_validate(t.to_data())
        FinalFareData.model_validate(final_fare(t, 10**9, 10**9).to_data())
