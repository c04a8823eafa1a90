"""The simulated fleet's vehicles and the riders' products, each drawn by a mix.

A vehicle mix names the product each simulated driver registers for, with a typical
vehicle of it (``vehicle_for``: for the default products a standard car of 4 seats, an xl
of 6, an accessible van of 4 seats; for a product of one's own catalog, the fewest seats
(at least 4) and the access it needs); a product mix names what each request asks for.
Mixes name products of the catalog in force (``DISPATCH_PRODUCTS``); the default mixes
keep only the products the catalog lists (``fit_mix``). Both are drawn from the run's
seeded streams, so the same seed makes the same fleet and the same requests.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from dispatch.domain.products import DEFAULT_CATALOG, Catalog, Vehicle

Mix = tuple[tuple[str, float], ...]

VEHICLE_OF: dict[str, Vehicle] = {
    "standard": Vehicle("standard", 4, False),
    "xl": Vehicle("xl", 6, False),
    "accessible": Vehicle("accessible", 4, True),
}
# More xl and accessible vehicles than rides ask for: the matcher offers a ride to the
# nearest vehicle that serves it, so they take standard rides too, and with 10 % and 5 %
# the default scenario served XL 62 % and accessible 72 % (docs/SIMULATION.md).
DEFAULT_VEHICLE_MIX: Mix = (("standard", 0.60), ("xl", 0.25), ("accessible", 0.15))
DEFAULT_PRODUCT_MIX: Mix = (("standard", 0.80), ("xl", 0.15), ("accessible", 0.05))
ALL_STANDARD: Mix = (("standard", 1.0),)


def parse_mix(text: str, what: str, catalog: Catalog = DEFAULT_CATALOG) -> Mix:
    """``standard=0.8,xl=0.15,accessible=0.05`` as a mix; ValueError saying what is wrong
    (a product ``catalog`` does not list, a share that is not a number of at least 0, none
    above 0)."""
    out: list[tuple[str, float]] = []
    for part in text.split(","):
        name, sep, share = (s.strip() for s in part.partition("="))
        if not sep:
            raise ValueError(f"{what}: {part.strip()!r} is not product=share")
        if name not in catalog.specs:
            raise ValueError(f"{what}: unknown product {name!r} (known: {catalog.known()})")
        try:
            weight = float(share)
        except ValueError:
            raise ValueError(f"{what}: the share of {name} is not a number: {share!r}") from None
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"{what}: the share of {name} must be a finite number >= 0")
        out.append((name, weight))
    if not any(w > 0 for _, w in out):
        raise ValueError(f"{what}: no product has a share above 0")
    return tuple(out)


def draw(mix: Sequence[tuple[str, float]], rng: random.Random) -> str:
    names = [n for n, _ in mix]
    return rng.choices(names, weights=[w for _, w in mix])[0]


def fit_mix(mix: Mix, catalog: Catalog) -> Mix:
    """``mix`` without the products ``catalog`` does not list (a default mix under a
    catalog of one's own); all of the first product when none is left."""
    kept = tuple((name, share) for name, share in mix if name in catalog.specs and share > 0)
    return kept or ((catalog.names[0], 1.0),)


def vehicle_for(product: str, catalog: Catalog) -> Vehicle:
    """A typical vehicle of ``product``: the default products' own, else the fewest seats
    (at least 4) and the access the catalog's product needs."""
    typical = VEHICLE_OF.get(product)
    spec = catalog.specs[product]
    if typical is not None and spec.qualifies(typical):
        return typical
    return Vehicle(product, max(4, spec.min_seats), spec.accessible)
