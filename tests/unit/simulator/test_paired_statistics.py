"""The statistics of a paired experiment: the per-seed differences' Student t interval,
what it does with missing values, and how strategies' summaries are lined up by seed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from dispatch.simulator.paired import (
    PairedDifference,
    compare,
    format_difference,
    paired_difference,
)

NAN = float("nan")

# Ten seeds' average waits under the baseline, and what the other strategy changes on each
# seed. The differences sum to -20 (mean -2.0) and their squared deviations from -2 sum to
# 16, so the sample sd is sqrt(16 / 9) = 4/3.
BASELINE = [31.0, 55.0, 42.0, 68.0, 25.0, 47.0, 39.0, 60.0, 51.0, 36.0]
CHANGE = [-1.5, -3.0, -2.0, 0.5, -4.0, -2.5, -1.0, -3.5, -2.0, -1.0]
OTHER = [b + c for b, c in zip(BASELINE, CHANGE, strict=True)]
T_975_9 = 2.262157  # Student t quantile, 0.975 with 9 degrees of freedom, from a table


def diff(
    baseline: list[float | None], other: list[float | None], confidence: float = 0.95
) -> PairedDifference:
    return paired_difference("wait_s", "greedy", "batch", baseline, other, confidence)


def run(seed: int, **metrics: Any) -> dict[str, Any]:
    return {"seed": seed, **metrics}


# --- the interval -------------------------------------------------------------------------


def test_the_interval_is_the_hand_computed_student_t_interval_for_ten_seeds() -> None:
    d = diff(list(BASELINE), list(OTHER))

    half = T_975_9 * (4 / 3) / math.sqrt(10)
    assert d.n == 10
    assert d.diff_mean == pytest.approx(-2.0, abs=1e-12)
    assert d.diff_sd == pytest.approx(4 / 3, abs=1e-12)
    assert d.ci_low == pytest.approx(-2.0 - half, abs=1e-6)
    assert d.ci_high == pytest.approx(-2.0 + half, abs=1e-6)
    assert d.baseline_mean == pytest.approx(45.4)
    assert d.other_mean == pytest.approx(43.4)
    assert d.confidence == 0.95
    assert d.method == "paired t (Student, n-1 df)"
    assert d.significant()


def test_the_95_percent_interval_covers_a_known_mean_difference_about_95_percent_of_the_time() -> (
    None
):
    rng = np.random.default_rng(20240613)
    true_diff, repeats, seeds = 2.0, 2_000, 10
    covered = 0
    for _ in range(repeats):
        # Between-seed spread in the baseline; the differences are Normal(2, 3).
        baseline = rng.normal(100.0, 25.0, seeds)
        other = baseline + rng.normal(true_diff, 3.0, seeds)
        d = diff(baseline.tolist(), other.tolist())
        assert d.ci_low is not None and d.ci_high is not None
        covered += d.ci_low <= true_diff <= d.ci_high

    assert 0.93 <= covered / repeats <= 0.97


def test_a_normal_approximation_would_have_been_narrower_for_ten_seeds() -> None:
    d = diff(list(BASELINE), list(OTHER))

    assert d.ci_low is not None and d.ci_high is not None
    z_half = 1.959964 * (4 / 3) / math.sqrt(10)
    assert (d.ci_high - d.ci_low) / 2 > z_half * 1.15


def test_a_lower_confidence_gives_a_narrower_interval() -> None:
    wide = diff(list(BASELINE), list(OTHER), 0.99)
    narrow = diff(list(BASELINE), list(OTHER), 0.80)

    assert wide.ci_low is not None and wide.ci_high is not None
    assert narrow.ci_low is not None and narrow.ci_high is not None
    assert wide.ci_low < narrow.ci_low < -2.0 < narrow.ci_high < wide.ci_high
    assert narrow.confidence == 0.80


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_scipy_paired_t_test_gives_the_same_interval(confidence: float) -> None:
    rng = np.random.default_rng(7)
    baseline = rng.normal(60.0, 20.0, 12)
    other = baseline + rng.normal(-1.5, 4.0, 12)
    result = stats.ttest_rel(other, baseline)
    if not hasattr(result, "confidence_interval"):
        pytest.skip("this scipy's ttest_rel has no confidence_interval")
    expected = result.confidence_interval(confidence)

    d = diff(baseline.tolist(), other.tolist(), confidence)

    assert d.ci_low == pytest.approx(float(expected.low), abs=1e-9)
    assert d.ci_high == pytest.approx(float(expected.high), abs=1e-9)


def test_pairing_finds_a_small_consistent_difference_that_unpaired_samples_hide() -> None:
    # Demand differs a lot between seeds; the other strategy is about 1 s faster on each.
    baseline = [120.0, 45.0, 300.0, 80.0, 210.0, 150.0, 60.0, 260.0, 95.0, 180.0]
    change = [-1.2, -0.8, -1.1, -0.9, -1.0, -1.3, -0.7, -1.0, -1.1, -0.9]
    other = [b + c for b, c in zip(baseline, change, strict=True)]
    unpaired = stats.ttest_ind(other, baseline).confidence_interval(0.95)

    d = diff(list(baseline), list(other))

    assert unpaired.low < 0 < unpaired.high
    assert d.significant()
    assert d.ci_high is not None and d.ci_high < 0


def test_an_interval_that_straddles_zero_is_not_significant() -> None:
    d = diff([10.0, 20.0, 30.0], [11.0, 19.0, 30.5])

    assert d.ci_low is not None and d.ci_high is not None
    assert d.ci_low < 0 < d.ci_high
    assert not d.significant()


# --- few or missing values ----------------------------------------------------------------


def test_a_seed_missing_on_either_side_is_left_out_for_both() -> None:
    d = diff([10.0, None, 30.0, NAN, 50.0], [12.0, 25.0, None, 44.0, 53.0])

    assert d.n == 2
    assert d.baseline_mean == pytest.approx(30.0)
    assert d.other_mean == pytest.approx(32.5)
    assert d.diff_mean == pytest.approx(2.5)
    assert d.diff_sd == pytest.approx(math.sqrt(0.5))


def test_nan_counts_as_missing_not_as_a_value() -> None:
    d = diff([1.0, 2.0, NAN], [2.0, 4.0, 5.0])

    assert d.n == 2
    assert d.diff_mean is not None and not math.isnan(d.diff_mean)
    assert d.ci_low is not None and not math.isnan(d.ci_low)


def test_one_seed_gives_a_difference_without_spread_or_interval() -> None:
    d = diff([10.0, None], [13.0, 4.0])

    assert d.n == 1
    assert d.diff_mean == 3.0
    assert (d.baseline_mean, d.other_mean) == (10.0, 13.0)
    assert d.diff_sd is None
    assert (d.ci_low, d.ci_high) == (None, None)
    assert not d.significant()


def test_no_seed_with_both_values_gives_nothing() -> None:
    for d in (diff([], []), diff([None, 1.0], [2.0, NAN])):
        assert d.n == 0
        assert d.baseline_mean is None and d.other_mean is None
        assert d.diff_mean is None and d.diff_sd is None
        assert (d.ci_low, d.ci_high) == (None, None)
        assert not d.significant()


def test_the_same_difference_on_every_seed_collapses_the_interval_to_that_point() -> None:
    d = diff([10.0, 20.0, 35.0, 50.0], [12.5, 22.5, 37.5, 52.5])

    assert d.diff_sd == 0.0
    assert d.ci_low == d.ci_high == 2.5
    assert d.significant()


def test_no_difference_on_any_seed_is_not_significant() -> None:
    d = diff([10.0, 20.0, 35.0], [10.0, 20.0, 35.0])

    assert (d.diff_mean, d.ci_low, d.ci_high) == (0.0, 0.0, 0.0)
    assert not d.significant()


# --- bad input ----------------------------------------------------------------------------


def test_values_of_unequal_length_are_refused() -> None:
    with pytest.raises(ValueError, match="3 values for greedy but 2 for batch"):
        diff([1.0, 2.0, 3.0], [1.0, 2.0])


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, 95.0, NAN])
def test_a_confidence_outside_zero_to_one_is_refused(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        diff([1.0, 2.0], [2.0, 3.0], confidence)
    with pytest.raises(ValueError, match="confidence"):
        compare({"greedy": [run(1, wait_s=1.0)]}, ["wait_s"], "greedy", confidence)


def test_an_infinite_value_is_refused_rather_than_averaged() -> None:
    with pytest.raises(ValueError, match="infinite"):
        diff([1.0, math.inf], [2.0, 3.0])


# --- compare ------------------------------------------------------------------------------


def test_compare_gives_one_difference_per_metric_and_non_baseline_strategy() -> None:
    summaries = {
        "greedy": [run(s, wait_s=b, served_pct=90.0) for s, b in enumerate(BASELINE)],
        "batch": [run(s, wait_s=o, served_pct=92.0) for s, o in enumerate(OTHER)],
        "random": [run(s, wait_s=b + 10.0, served_pct=80.0) for s, b in enumerate(BASELINE)],
    }

    result = compare(summaries, ["wait_s", "served_pct"], "greedy")

    assert [(d.metric, d.baseline, d.other) for d in result] == [
        ("wait_s", "greedy", "batch"),
        ("wait_s", "greedy", "random"),
        ("served_pct", "greedy", "batch"),
        ("served_pct", "greedy", "random"),
    ]
    assert result[0] == diff(list(BASELINE), list(OTHER))
    assert [d.diff_mean for d in result[1:]] == pytest.approx([10.0, 2.0, -10.0])
    assert all(d.n == 10 for d in result)


def test_compare_counts_a_metric_missing_from_a_summary_as_none() -> None:
    summaries = {
        "greedy": [run(1, wait_s=10.0), run(2, wait_s=20.0), run(3, wait_s=30.0)],
        "batch": [run(1, wait_s=9.0), run(2), run(3, wait_s=28.0, time_to_offer_s=None)],
    }

    wait, offer = compare(summaries, ["wait_s", "time_to_offer_s"], "greedy")

    assert wait.n == 2
    assert wait.diff_mean == pytest.approx(-1.5)
    assert offer.n == 0
    assert format_difference(offer) == "\u2013 (n=0)"


def test_compare_refuses_strategies_that_ran_different_seeds() -> None:
    summaries = {
        "greedy": [run(1, wait_s=1.0), run(2, wait_s=2.0), run(3, wait_s=3.0)],
        "batch": [run(1, wait_s=1.0), run(2, wait_s=2.0), run(4, wait_s=3.0)],
    }

    with pytest.raises(ValueError, match=r"batch lacks seeds \[3\] and has seeds \[4\]"):
        compare(summaries, ["wait_s"], "greedy")


def test_compare_refuses_the_same_seeds_in_another_order() -> None:
    summaries = {
        "greedy": [run(1, wait_s=1.0), run(2, wait_s=2.0)],
        "batch": [run(2, wait_s=2.0), run(1, wait_s=1.0)],
    }

    with pytest.raises(ValueError, match=r"another order \(its seeds \[2, 1\], greedy's \[1, 2\]"):
        compare(summaries, ["wait_s"], "greedy")


def test_compare_refuses_a_summary_without_a_seed_or_a_seed_run_twice() -> None:
    with pytest.raises(ValueError, match="no 'seed'"):
        compare({"greedy": [run(1)], "batch": [{"wait_s": 1.0}]}, ["wait_s"], "greedy")
    with pytest.raises(ValueError, match="more than once"):
        compare({"greedy": [run(1), run(1)], "batch": [run(1), run(1)]}, ["wait_s"], "greedy")


def test_compare_refuses_an_unknown_baseline() -> None:
    with pytest.raises(ValueError, match="'fifo' is not among"):
        compare({"greedy": [run(1)], "batch": [run(1)]}, ["wait_s"], "fifo")


def test_compare_refuses_a_metric_that_is_not_a_number() -> None:
    summaries = {"greedy": [run(1, strategy="greedy")], "batch": [run(1, strategy="batch")]}

    with pytest.raises(TypeError, match="not a number"):
        compare(summaries, ["strategy"], "greedy")


# --- formatting ---------------------------------------------------------------------------


def test_format_shows_the_mean_difference_its_interval_and_the_seeds_behind_it() -> None:
    d = diff(list(BASELINE), list(OTHER))

    assert format_difference(d) == "-2.0 [-3.0, -1.0] (n=10)"
    assert format_difference(d, digits=3) == "-2.000 [-2.954, -1.046] (n=10)"


def test_format_without_an_interval_or_without_a_difference() -> None:
    assert format_difference(diff([1.0], [3.5])) == "2.5 (n=1)"
    assert format_difference(diff([None], [3.5])) == "\u2013 (n=0)"
    with pytest.raises(ValueError, match="digits"):
        format_difference(diff([1.0], [3.5]), digits=-1)
