"""A ride's fare explained from its events alone (``dispatch replay fare``).

The ride's ``Requested`` event holds the terms it is priced on (rule, rules version,
surge, the quote's promise); its ``Completed`` event the trip driven and the final fare.
The explanation shows each, the arithmetic of the metered fare with the rule's own
amounts, and which total the rider pays and why (docs/MARKETPLACE.md, "The ride's fare");
it prices the trip again with the pure pricing core and says whether that agrees with the
fare the event recorded. Its surge is traced to the surge event the terms name, when the
caller read it from the log (``surge_sources``): that event's row for the cell (demand,
supply, target, previous level) is shown, and a surge the event does not bear out makes
the fare disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from dispatch.domain.fares import amount_text
from dispatch.domain.ride import Ride
from dispatch.domain.ride_fare import FareTerms, final_fare
from dispatch.domain.surge import recorded_changes
from dispatch.log import LogEvent
from dispatch.matching.geo import haversine_m
from dispatch.replay.surge_sources import pickup_cells, surge_problem


@dataclass
class FareExplanation:
    """``lines`` to print; ``facts`` for ``--json``; ``agrees``: whether the fare priced
    again equals the one recorded (None: nothing to check, the ride is not priced or has
    not completed)."""

    lines: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    agrees: bool | None = None


def explain_fare(events: list[Any], surge_event: LogEvent | None = None) -> FareExplanation:
    """Explain the fare of the ride whose domain events (upcast, in order) are ``events``;
    ``surge_event``: the event its terms name as their surge's source, read from the log
    (None: they name none, or the log has none there)."""
    out = FareExplanation()
    requested = next(e for e in events if isinstance(e, Ride.Created | Ride.Booked))
    ride_id = requested.originator_id
    out.facts.update(ride_id=str(ride_id), terms=requested.fare)
    if requested.fare is None:
        out.lines.append(f"ride {ride_id}: not priced (no fare terms in its requested event)")
    else:
        try:
            terms = FareTerms.from_data(requested.fare)
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            out.lines.append(f"ride {ride_id}: its fare terms do not read: {error}")
            out.agrees = False
            return out
        _terms(out, terms, ride_id)
        _surge(out, terms, surge_event, requested)
    completed = next((e for e in events if isinstance(e, Ride.Completed)), None)
    cancelled = next((e for e in events if isinstance(e, Ride.CancelledByRider)), None)
    if cancelled is not None and cancelled.fee is not None:
        out.facts["cancellation_fee"] = cancelled.fee
        out.lines.append(f"cancelled by the rider after its free cutoff: charged {cancelled.fee} "
                         "(its fare rule's minimum)")  # fmt: skip
    if completed is None:
        out.lines.append("not completed: no trip driven, no final fare")
        return out
    if completed.distance_m is None:
        out.lines.append("completed before fares were recorded: no trip, no final fare")
        return out
    _trip(out, requested, completed, events)
    if requested.fare is not None:
        _final(out, FareTerms.from_data(requested.fare), completed)
    return out


def _terms(out: FareExplanation, terms: FareTerms, ride_id: Any) -> None:
    money = terms.currency
    rule = ", ".join(f"{name} {amount_text(getattr(terms.rule, name), money)}"
                     for name in ("base", "per_km", "per_min", "minimum"))  # fmt: skip
    out.lines += [
        f"ride {ride_id}: {terms.product} in {terms.market or 'no market (elsewhere rules)'}, "
        f"rules {terms.rules_version}, {money}",
        f"rule: {rule}; surge {terms.surge}",
    ]
    quote = terms.quote
    if quote is None:
        out.lines.append("no quote: the rider pays the metered fare of the trip driven")
    else:
        out.lines.append(
            f"quote {quote.quote_id}: {quote.distance_m:,} m, {quote.duration_s:,} s "
            f"({quote.estimated_by}) -> {amount_text(quote.total, money)} {money}"
        )


def _surge(out: FareExplanation, terms: FareTerms, event: LogEvent | None, requested: Any) -> None:
    found = terms.surge_from
    if found is None:
        out.lines.append("surge source: not recorded (terms from before it was, or no surge)")
        return
    pickup = None if requested.pickup is None else (requested.pickup[0], requested.pickup[1])
    cells = pickup_cells(pickup, terms.quote is not None)
    if found.shard is None:
        out.lines.append("surge source: the pickup's surge cell had no change (1.00)")
    else:
        line = f"surge source: the event at {found.shard}:{found.position}"
        row = None
        if event is not None:
            row = next((c for c in recorded_changes(event.topic, event.data)
                        if (cells is None or c.cell in cells)
                        and Decimal(c.multiplier) == terms.surge), None)  # fmt: skip
        if event is not None and row is not None:
            when = datetime.fromtimestamp(event.at, UTC).isoformat()
            line += (f" ({event.topic}, {when}): cell {row.cell} {row.previous} -> "
                     f"{row.multiplier}, target {row.target}, demand {row.demand}, supply "
                     f"{row.supply} over {row.window_s:g} s")  # fmt: skip
            out.facts["surge_event"] = {"where": event.where, "topic": event.topic,
                                        "at": event.at, "row": row._asdict()}  # fmt: skip
        out.lines.append(line)
    requested_at = requested.timestamp.timestamp()
    problem = surge_problem(terms.surge, found, event, requested_at, cells)
    out.facts["surge_problem"] = problem
    if problem is not None:
        out.lines.append(f"surge does not agree with the log: {problem}")
        out.agrees = False


def _trip(out: FareExplanation, requested: Any, completed: Any, events: list[Any]) -> None:
    if requested.pickup is None or requested.dropoff is None:  # erased (docs/PRIVACY.md)
        crow = None
    else:
        crow = haversine_m(*requested.pickup, *requested.dropoff)
    started = next((e for e in events if isinstance(e, Ride.TripStarted)), None)
    found = completed.trip_by or {}
    factor = (requested.fare or {}).get("road_factor")
    if crow is None:  # the pickup and drop-off were erased with the rider's key
        distance = f"{completed.distance_m:,} m ({found.get('distance')}: pickup and "
        distance += "drop-off erased, great circle unknown"
        distance += f", road factor {factor})" if factor is not None else ")"
    elif found.get("distance") == "road_network":  # routed over the graph it names
        distance = f"{completed.distance_m:,} m (road_network: routed over "
        distance += f"{found.get('road_graph')}; great circle {crow:,.0f} m)"
    else:
        distance = f"{completed.distance_m:,} m ({found.get('distance')}: great circle "
        distance += f"{crow:,.0f} m"
        if factor is not None:  # the factor the terms recorded, which gave the distance
            distance += f" x road factor {factor})"
        else:  # terms recorded before the factor was: the ratio, not the factor
            distance += f" x {completed.distance_m / crow:.2f})" if crow else ")"
    duration = f"{completed.duration_s:,} s ({found.get('duration')}"
    if found.get("duration") == "clock" and started is not None:
        duration += f": trip started {started.timestamp.isoformat()}, completed "
        duration += completed.timestamp.isoformat()
    out.lines.append(f"trip driven: {distance}, {duration})")
    out.facts["trip"] = {"distance_m": completed.distance_m, "duration_s": completed.duration_s,
                         "found_by": found}  # fmt: skip


def _final(out: FareExplanation, terms: FareTerms, completed: Any) -> None:
    money, rule = terms.currency, terms.rule
    km, minutes = Fraction(completed.distance_m, 1000), Fraction(completed.duration_s, 60)
    exact = Fraction(rule.base) + Fraction(rule.per_km) * km + Fraction(rule.per_min) * minutes
    again = final_fare(terms, completed.distance_m, completed.duration_s)

    def a(amount: Decimal) -> str:
        return amount_text(amount, money)

    out.lines.append(
        f"metered: max({a(rule.minimum)}, {a(rule.base)} + {a(rule.per_km)} x "
        f"{_num(km)} km + {a(rule.per_min)} x {_num(minutes)} min) x {terms.surge} = "
        f"max({a(rule.minimum)}, {_num(exact)}) x {terms.surge} = {a(again.metered.total)} "
        "(rounded half up)"
    )
    quote = terms.quote
    if quote is None:
        why = "no quote: the metered fare"
    else:
        off = Fraction(again.metered.total) - Fraction(quote.total)
        side = "above" if off > 0 else "below" if off < 0 else "at"
        why = (f"the quoted total, upfront (the metered fare, {a(again.metered.total)}, is "
               f"{_num(abs(off))} {side} it, for comparison only)")  # fmt: skip
    out.lines.append(f"pays {a(again.total)} {money}: {why}")
    recorded = completed.fare
    priced_agrees = recorded == again.to_data()
    if not priced_agrees:
        out.lines.append(f"MISMATCH: the event recorded {recorded}, priced again {again.to_data()}")
    out.agrees = priced_agrees and out.facts.get("surge_problem") is None
    out.facts.update(recorded=recorded, priced_again=again.to_data(), agrees=out.agrees)


def _num(value: Fraction) -> str:
    """An exact amount as decimal text: at most 4 places, trailing zeros dropped."""
    text = f"{Decimal(value.numerator) / Decimal(value.denominator):.4f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
