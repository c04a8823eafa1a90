"""Spherical geometry helpers shared by the matcher.

Distances use the haversine formula on a sphere of radius 6 371 008.8 m (the mean Earth
radius H3 itself uses), so they are comparable with ``h3.great_circle_distance``.
"""

from __future__ import annotations

import math

from h3.api import basic_int as h3i

from dispatch.domain.geo import latlng_problem

EARTH_RADIUS_M = 6_371_008.8
TWO_R_M = 2.0 * EARTH_RADIUS_M

# Safety margin added to every cell radius: 1 ppm + 1 cm.  Rounding in H3's point-in-cell
# assignment and in our haversine is many orders of magnitude smaller (nanometres).
_RADIUS_REL_MARGIN = 1e-6
_RADIUS_ABS_MARGIN_M = 0.01


def check_latlng(lat: float, lng: float) -> None:
    """Raise ValueError unless ``lat``/``lng`` are finite degrees in range."""
    problem = latlng_problem(lat, lng)
    if problem is not None:
        raise ValueError(problem)


def hav_term(
    lat1_r: float, lng1_r: float, cos1: float, lat2_r: float, lng2_r: float, cos2: float
) -> float:
    """The haversine term ``a`` (monotone in distance) for points given in radians."""
    s1 = math.sin((lat2_r - lat1_r) * 0.5)
    s2 = math.sin((lng2_r - lng1_r) * 0.5)
    return s1 * s1 + cos1 * cos2 * s2 * s2


def hav_to_m(a: float) -> float:
    """Convert a haversine term into metres."""
    return TWO_R_M * math.asin(math.sqrt(min(a, 1.0)))


def m_to_hav(distance_m: float) -> float:
    """Inverse of :func:`hav_to_m` (distances beyond half the circumference map to 1)."""
    s = math.sin(min(distance_m / TWO_R_M, math.pi / 2))
    return s * s


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres between two points given in degrees.

    Evaluated with exactly the same floating-point operations as ``DriverIndex.nearest``
    (query as the first point, driver as the second), so brute force compares bit-for-bit.
    """
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    a = hav_term(p1, math.radians(lng1), math.cos(p1), p2, math.radians(lng2), math.cos(p2))
    return hav_to_m(a)


def cell_disc(cell: int) -> tuple[float, float, float, float]:
    """Return ``(lat_r, lng_r, cos_lat, radius_m)``: a cap around the cell centre that
    contains every point H3 assigns to ``cell``.

    H3 cell edges are straight lines in a gnomonic projection, i.e. great-circle arcs
    (Class III cells crossing an icosahedron edge get extra "distortion" vertices, which
    ``cell_to_boundary`` includes, so every piece is still a geodesic arc).  Along an arc
    much shorter than pi the distance to a fixed point has no interior maximum, and the
    distance from a point has no local maximum inside a small polygon, so the farthest
    point of the cell from its centre is a vertex.  The max vertex distance plus a tiny
    margin is therefore a proven circumradius, for hexagons and pentagons alike.
    """
    clat, clng = h3i.cell_to_latlng(cell)
    la = math.radians(clat)
    ln = math.radians(clng)
    cl = math.cos(la)
    far = 0.0
    for vlat, vlng in h3i.cell_to_boundary(cell):
        vla = math.radians(vlat)
        a = hav_term(la, ln, cl, vla, math.radians(vlng), math.cos(vla))
        far = max(far, hav_to_m(a))
    return la, ln, cl, far * (1.0 + _RADIUS_REL_MARGIN) + _RADIUS_ABS_MARGIN_M
