"""A ride carries its product itself (``Ride.Requested`` version 3), priced or not; an
event stored before (version 2 or 1) reads as its fare's product, or standard unpriced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import StoredEvent

from dispatch.domain.fares import FareRule
from dispatch.domain.geo import Point
from dispatch.domain.ride import Ride
from dispatch.domain.ride_fare import FareTerms
from dispatch.shard.application import ShardApplication

AT = datetime(2026, 1, 5, tzinfo=UTC)
RULE = FareRule("USD", Decimal("2.50"), Decimal("1.10"), Decimal("0.30"), Decimal(7))


def _ride(fare: FareTerms | None, product: str | None) -> Ride:
    here, there = Point(37.77, -122.42), Point(37.8, -122.4)
    return Ride.request(uuid.uuid4(), uuid.uuid4(), here, there, 600, AT, fare, product)


def _as_older(app: ShardApplication, event: object, version: int) -> Any:
    """``event`` as version ``version`` stored it (no product; no fare before 2), read back."""
    mapper = app.mapper
    stored = mapper.to_stored_event(event)  # type: ignore[arg-type]
    state = mapper.transcoder.decode(stored.state)
    del state["product"]
    if version == 1:
        del state["fare"]
    state["class_version"] = version
    old = StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                      mapper.transcoder.encode(state))  # fmt: skip
    return mapper.to_domain_event(old)


def test_an_unpriced_ride_keeps_its_product() -> None:
    ride = _ride(None, "accessible")
    assert ride.product == "accessible"
    assert ride.collect_events()[0].product == "accessible"  # type: ignore[attr-defined]


def test_a_priced_ride_without_a_product_takes_its_fares() -> None:
    terms = FareTerms("xl", "san-francisco", "sha256:0123456789abcdef", RULE, Decimal(1))
    assert _ride(terms, None).product == "xl"
    assert _ride(None, None).product == "standard"


def test_a_version_2_request_reads_as_its_fares_product_or_standard() -> None:
    app = ShardApplication(1)
    terms = FareTerms("xl", "san-francisco", "sha256:0123456789abcdef", RULE, Decimal(1))
    priced = _as_older(app, _ride(terms, "xl").collect_events()[0], 2)
    assert priced.product == "xl"
    unpriced = _as_older(app, _ride(None, "accessible").collect_events()[0], 2)
    assert unpriced.product == "standard"  # as it was matched then
    assert unpriced.mutate(None).product == "standard"


def test_a_version_1_request_reads_as_standard_and_not_priced() -> None:
    app = ShardApplication(1)
    event = _as_older(app, _ride(None, "xl").collect_events()[0], 1)
    assert (event.fare, event.product) == (None, "standard")
