"""Views keep sealed personal fields as the log holds them (docs/PRIVACY.md): the rides
view and its timeline keep tokens, an answer opens them, an erased rider's ride answers
with no coordinates, and the heatmap counts a sealed pickup in its cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h3
import pytest

from dispatch.adapters.crypto.aesgcm import AesGcmCipher
from dispatch.adapters.sqlite.keystore import SqliteKeyStore
from dispatch.api.present import ride_view
from dispatch.domain.ids import new_id
from dispatch.domain.ride import Ride
from dispatch.log import LogEvent
from dispatch.privacy import PersonalData, is_sealed
from projections.heatmap import BASE_RESOLUTION, HeatmapProjection
from projections.rides import RidesProjection
from schemas.events import RideRequested

PICKUP, DROPOFF = [37.77, -122.42], [37.62, -122.38]


@pytest.fixture
def personal(tmp_path: Path) -> PersonalData:
    return PersonalData(AesGcmCipher(), SqliteKeyStore(tmp_path / "keys.sqlite"))


def _requested(personal: PersonalData) -> tuple[LogEvent, Any]:
    rider = new_id(0)
    key = personal.keys.create(rider)
    data = {
        "rider_id": str(rider),
        "pickup": personal.seal(key, "pickup", PICKUP),
        "dropoff": personal.seal(key, "dropoff", DROPOFF),
        "expires_at": "2026-01-05T08:05:00+00:00",
    }
    return LogEvent(0, 1, str(new_id(0)), 1, Ride.Created.TOPIC, 100.0, data), rider


def test_the_rides_view_keeps_tokens_and_an_answer_opens_them(personal: PersonalData) -> None:
    event, _ = _requested(personal)
    view = RidesProjection().apply(RidesProjection().initial(), event)
    row = view[event.aggregate_id]
    assert is_sealed(row.pickup) and is_sealed(row.timeline[0]["pickup"])
    answer = ride_view(row, open=personal.open)
    assert answer.pickup is not None and [answer.pickup.lat, answer.pickup.lng] == PICKUP
    assert answer.timeline[0].data["dropoff"] == DROPOFF


def test_an_erased_riders_ride_answers_without_coordinates(personal: PersonalData) -> None:
    event, rider = _requested(personal)
    view = RidesProjection().apply(RidesProjection().initial(), event)
    personal.keys.erase(rider)
    answer = ride_view(view[event.aggregate_id], open=personal.open)
    assert (answer.pickup, answer.dropoff) == (None, None)
    assert answer.timeline[0].data["pickup"] == "erased"


def test_the_heatmap_counts_a_sealed_pickup_in_its_cell(personal: PersonalData) -> None:
    event, _ = _requested(personal)
    heatmap = HeatmapProjection(personal.open)
    view = heatmap.apply(heatmap.initial(), event)
    cell = h3.latlng_to_cell(*PICKUP, BASE_RESOLUTION)
    assert view.demand == {cell: 1}


def test_the_published_schema_takes_a_sealed_ride_request(personal: PersonalData) -> None:
    event, _ = _requested(personal)
    RideRequested.model_validate(event.data)
    with pytest.raises(ValueError):
        RideRequested.model_validate({**event.data, "pickup": "pf1.not-a-token"})
