"""The statistics on known numbers: SciPy's intervals and tests, the verdict, the seeds a difference needs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from resnet_lightning.compare.statistics import (
    adjusted,
    mean_interval,
    paired_difference,
    seeds_needed,
)

BASE = [0.910, 0.921, 0.905, 0.915]
BETTER = [0.930, 0.935, 0.921, 0.936]  # about +0.018, consistently
NOISY = [0.900, 0.940, 0.890, 0.935]  # about +0.003, swinging both ways


def test_mean_interval_is_the_t_interval():
    interval = mean_interval(BASE)
    low, high = stats.t.interval(0.95, len(BASE) - 1, loc=np.mean(BASE), scale=stats.sem(BASE))
    assert (interval.low, interval.high) == pytest.approx((low, high))
    assert interval.std == pytest.approx(np.std(BASE, ddof=1)) and interval.n == 4


def test_a_consistent_difference_is_shown_and_a_noisy_one_is_not():
    better = paired_difference(BETTER, BASE)
    assert better.shown and better.interval.low > 0
    assert better.p_value == pytest.approx(stats.ttest_rel(BETTER, BASE).pvalue) and better.p_value < 0.05
    assert better.bootstrap_low <= better.interval.mean <= better.bootstrap_high
    noisy = paired_difference(NOISY, BASE)
    assert not noisy.shown and noisy.p_value > 0.05
    assert noisy.seeds_needed > better.seeds_needed >= 2  # a small, noisy difference needs many more seeds


def test_seeds_needed_reaches_eighty_percent_power():
    n = seeds_needed(0.01, 0.01)  # effect size 1
    power = lambda k: stats.nct.sf(stats.t.ppf(0.975, k - 1), k - 1, np.sqrt(k)) + stats.nct.cdf(-stats.t.ppf(0.975, k - 1), k - 1, np.sqrt(k))
    assert power(n) >= 0.8 > power(n - 1)
    assert seeds_needed(0.0, 0.01) is None and seeds_needed(1e-6, 1.0) == 1001


def test_identical_runs_and_a_constant_shift():
    same = paired_difference(BASE, BASE)
    assert same.p_value == 1.0 and not same.shown and same.seeds_needed is None
    shifted = paired_difference([x + 0.01 for x in BASE], BASE)
    assert shifted.shown and shifted.interval.low == pytest.approx(0.01)


def test_benjamini_hochberg_is_scipys():
    p = [0.01, 0.04, 0.03, 0.5]
    assert adjusted(p) == pytest.approx(list(stats.false_discovery_control(p)))


def test_seeds_needed_for_a_large_difference_survives_scipys_nan_tail():
    # nct.cdf(-t, 1, 8.5) is NaN in SciPy; a difference six standard deviations wide needs 3 seeds, not "more".
    assert seeds_needed(-0.53, 0.088) == 3 and seeds_needed(0.53, 0.088) == 3
