"""The statistics of a paired dispatch experiment.

``dispatch experiment --strategies greedy,batch --seeds 10`` runs every strategy on every
seed, and a seed fixes the demand: the same riders ask for rides at the same places and
times whichever strategy dispatches them. That is a paired design. Most of the spread of a
metric between seeds comes from the demand (a busy seed has long waits under every
strategy), and the difference between two strategies on the same seed cancels it. So the
comparison is made on the per-seed differences ``other - baseline``, not on two separate
samples: with the same runs, its interval is much narrower whenever the strategies move
together from seed to seed.

The interval is Student's t on those differences::

    mean(d) ± t_{(1+c)/2, n-1} · sd(d) / sqrt(n)

with ``sd`` the sample standard deviation (n - 1 in the denominator) and the t quantile
taken from ``scipy.stats``. It assumes the differences are independent draws from a roughly
normal distribution. A normal approximation (1.96 for 95 %) is not used: an experiment has
about ten seeds, the standard deviation is itself estimated from those ten, and with 9
degrees of freedom the right factor is 2.262, not 1.96: a z interval would be 13 % too
narrow and cover the true difference about 92 % of the time while claiming 95 %.

A seed where either strategy has no value for the metric (None or NaN: say, a time to offer
in a run without requests) is left out of that metric's comparison, for both strategies.

This module imports nothing of the project; the experiment command feeds it plain dicts.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

METHOD = "paired t (Student, n-1 df)"
NO_VALUE = "\u2013"  # an en dash, for a difference with no seed behind it


@dataclass(frozen=True)
class PairedDifference:
    """One metric compared between a baseline strategy and another one, seed by seed.

    ``n`` counts the seeds where both strategies have a value; the two means and the mean
    difference are over those seeds only, so ``diff_mean == other_mean - baseline_mean``
    (up to rounding). With n == 1 there is a difference but no spread, so ``diff_sd`` and
    the interval are None; with n == 0 every figure is None.
    """

    metric: str
    baseline: str
    other: str
    n: int
    baseline_mean: float | None
    other_mean: float | None
    diff_mean: float | None
    diff_sd: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    method: str

    def significant(self) -> bool:
        """Whether the interval excludes 0 (False when there is no interval)."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 0 or self.ci_high < 0


def _pairs(
    baseline_values: Sequence[float | None], other_values: Sequence[float | None]
) -> list[tuple[float, float]]:
    """The (baseline, other) pairs where both sides have a value (not None, not NaN)."""
    pairs: list[tuple[float, float]] = []
    for b, o in zip(baseline_values, other_values, strict=True):
        if b is None or o is None or math.isnan(b) or math.isnan(o):
            continue
        if math.isinf(b) or math.isinf(o):
            raise ValueError(f"an infinite value ({b} vs {o}) has no mean difference")
        pairs.append((float(b), float(o)))
    return pairs


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:  # also rejects NaN
        raise ValueError(f"confidence must be strictly between 0 and 1, not {confidence}")


def t_interval(differences: Sequence[float], confidence: float) -> tuple[float, float]:
    """Student's t interval for the mean of ``differences`` (at least two of them).

    When all differences are the same, the standard deviation is 0 and the interval
    collapses to that one value: the data show no spread at all, so there is nothing to
    widen it by (and it excludes 0 unless the difference is 0).
    """
    n = len(differences)
    if n < 2:
        raise ValueError(f"a t interval needs at least two differences, got {n}")
    _check_confidence(confidence)
    mean = statistics.fmean(differences)
    sd = statistics.stdev(differences)
    t = float(stats.t.ppf((1 + confidence) / 2, n - 1))
    half = t * sd / math.sqrt(n)
    return mean - half, mean + half


def paired_difference(
    metric: str,
    baseline: str,
    other: str,
    baseline_values: Sequence[float | None],
    other_values: Sequence[float | None],
    confidence: float = 0.95,
) -> PairedDifference:
    """Compare ``other`` with ``baseline`` on one metric; the values are per seed, seed i of
    one sequence paired with seed i of the other. The difference is ``other - baseline``.
    When every seed shows the same difference, the interval is that single point (see
    ``t_interval``).

    Raises ValueError when the sequences differ in length, when ``confidence`` is not
    strictly between 0 and 1, or when a value is infinite.
    """
    _check_confidence(confidence)
    if len(baseline_values) != len(other_values):
        raise ValueError(
            f"{metric}: {len(baseline_values)} values for {baseline} but "
            f"{len(other_values)} for {other}; the values must be one per seed for both"
        )
    pairs = _pairs(baseline_values, other_values)
    diffs = [o - b for b, o in pairs]
    n = len(pairs)
    sd = statistics.stdev(diffs) if n >= 2 else None
    low, high = t_interval(diffs, confidence) if n >= 2 else (None, None)
    return PairedDifference(
        metric=metric,
        baseline=baseline,
        other=other,
        n=n,
        baseline_mean=statistics.fmean(b for b, _ in pairs) if pairs else None,
        other_mean=statistics.fmean(o for _, o in pairs) if pairs else None,
        diff_mean=statistics.fmean(diffs) if diffs else None,
        diff_sd=sd,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        method=METHOD,
    )


def _seeds(strategy: str, runs: Sequence[Mapping[str, Any]]) -> list[Any]:
    try:
        seeds = [run["seed"] for run in runs]
    except KeyError:
        raise ValueError(f"a summary of {strategy} has no 'seed'") from None
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{strategy} ran a seed more than once: {seeds}")
    return seeds


def _check_same_seeds(summaries: Mapping[str, Sequence[Mapping[str, Any]]], baseline: str) -> None:
    """Every strategy must have run the baseline's seeds, in the baseline's order."""
    expected = _seeds(baseline, summaries[baseline])
    for strategy, runs in summaries.items():
        seeds = _seeds(strategy, runs)
        if seeds != expected:
            raise ValueError(_seed_mismatch(strategy, seeds, baseline, expected))


def _seed_mismatch(strategy: str, seeds: list[Any], baseline: str, expected: list[Any]) -> str:
    missing = [s for s in expected if s not in seeds]
    extra = [s for s in seeds if s not in expected]
    problems = [f"lacks seeds {missing}"] if missing else []
    problems += [f"has seeds {extra} that {baseline} did not run"] if extra else []
    how = " and ".join(problems) or "has the same seeds in another order"
    return (
        f"{strategy} {how} (its seeds {seeds}, {baseline}'s {expected}); "
        "a paired comparison needs the same seeds in the same order"
    )


def _metric_value(run: Mapping[str, Any], metric: str) -> float | None:
    """The run's figure for ``metric``; a missing metric counts as None."""
    value = run.get(metric)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{metric} = {value!r} is not a number")
    return float(value)


def compare(
    summaries: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str],
    baseline: str,
    confidence: float = 0.95,
) -> list[PairedDifference]:
    """One PairedDifference per metric and per strategy other than ``baseline``, metric by
    metric, the strategies in the order of ``summaries``.

    ``summaries`` maps a strategy to its runs' summaries, one dict per seed, each with a
    ``"seed"`` key. Raises ValueError when ``baseline`` is not among them or when the
    strategies did not run the same seeds in the same order.
    """
    _check_confidence(confidence)
    if baseline not in summaries:
        raise ValueError(f"baseline {baseline!r} is not among the strategies {list(summaries)}")
    _check_same_seeds(summaries, baseline)
    base_runs = summaries[baseline]
    return [
        paired_difference(
            metric,
            baseline,
            strategy,
            [_metric_value(run, metric) for run in base_runs],
            [_metric_value(run, metric) for run in runs],
            confidence,
        )
        for metric in metrics
        for strategy, runs in summaries.items()
        if strategy != baseline
    ]


def format_difference(d: PairedDifference, digits: int = 1) -> str:
    """``-12.3 [-15.1, -9.4] (n=10)``; ``2.0 (n=1)`` without an interval; an en dash
    (``\\u2013 (n=0)``) when there is no difference at all."""
    if digits < 0:
        raise ValueError(f"digits must be 0 or more, not {digits}")
    if d.diff_mean is None:
        return f"{NO_VALUE} (n={d.n})"
    text = f"{d.diff_mean:.{digits}f}"
    if d.ci_low is not None and d.ci_high is not None:
        text += f" [{d.ci_low:.{digits}f}, {d.ci_high:.{digits}f}]"
    return f"{text} (n={d.n})"
