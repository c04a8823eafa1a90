"""DISPATCH_PRODUCTS must keep the default vehicle (standard, 4 seats, not accessible) a
``standard`` car: drivers registered without a vehicle, or before vehicles, drive it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispatch.domain.products import DEFAULT_VEHICLE
from dispatch.settings import Settings


@pytest.mark.parametrize(
    ("products", "reason"),
    [
        ('{"xl": {"min_seats": 6}, "accessible": {"min_seats": 1, "accessible": true}}',
         "DISPATCH_PRODUCTS must list 'standard' \\(products: xl, accessible\\)"),
        ('{"standard": {"min_seats": 5}}',
         "DISPATCH_PRODUCTS: 'standard' must be served by the default vehicle \\(4 seats, "
         "not accessible\\), so min_seats at most 4 and accessible false \\(got min_seats 5"),
        ('{"standard": {"min_seats": 1, "accessible": true}}',
         "DISPATCH_PRODUCTS: 'standard' must be served by the default vehicle"),
    ],
)  # fmt: skip
def test_a_catalog_the_default_vehicle_does_not_serve_as_standard_is_refused(
    monkeypatch: pytest.MonkeyPatch, products: str, reason: str
) -> None:
    monkeypatch.setenv("DISPATCH_PRODUCTS", products)
    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_a_catalog_whose_standard_the_default_vehicle_serves_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "DISPATCH_PRODUCTS", '{"standard": {"min_seats": 4}, "xl": {"min_seats": 7}}'
    )
    catalog = Settings().catalog
    assert catalog.names == ("standard", "xl")
    assert catalog.serves(DEFAULT_VEHICLE) == frozenset({"standard"})
