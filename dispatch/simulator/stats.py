"""Small statistics the reports share: nearest-rank percentiles and means that are None
when there is no value at all."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank), None when there is no value at all."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None
