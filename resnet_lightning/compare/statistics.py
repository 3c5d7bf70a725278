"""What the seeds say: per-variant intervals and paired differences against the baseline, computed by SciPy.

* Per variant: mean, standard deviation and the 95% t-interval of the mean over seeds
  (``scipy.stats.ttest_1samp(...).confidence_interval``).
* Against the baseline, paired by seed (runs with one seed share the data order):
  the mean difference with its 95% t-interval and two-sided p-value
  (``scipy.stats.ttest_rel``), and a percentile bootstrap interval of the mean
  difference (``scipy.stats.bootstrap``, fixed seed) as a check that does not assume
  normal differences (with 3 seeds it can only take a few values: read it as a hint).
* The p-values are **not corrected** for comparing several variants; the Benjamini-
  Hochberg adjusted values (``scipy.stats.false_discovery_control``) are given beside
  them.
* "no difference shown" when the paired interval includes zero.
* Seeds needed: the smallest number of seeds with which a paired t-test at 5% would
  find a difference of the observed size (mean / sd of the paired differences) with
  80% power, from the noncentral t distribution (``scipy.stats.nct``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
MAX_SEEDS_NEEDED = 1000
BOOTSTRAP_RESAMPLES = 9999


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its confidence interval."""

    mean: float
    low: float
    high: float
    std: float
    n: int


@dataclass(frozen=True)
class Difference:
    """A variant minus the baseline, paired by seed."""

    interval: Interval
    p_value: float
    bootstrap_low: float
    bootstrap_high: float
    seeds_needed: int | None  # None: the observed difference is zero (no number of seeds finds it)

    @property
    def shown(self) -> bool:
        """Whether the paired interval excludes zero."""
        return self.interval.low > 0 or self.interval.high < 0


def mean_interval(values: list[float]) -> Interval:
    """Mean, sd and the t-interval over ``values`` (two or more)."""
    x = np.asarray(values, dtype=float)
    mean, std = float(x.mean()), float(x.std(ddof=1))
    if std == 0:  # SciPy's interval is undefined without spread; it is the point itself
        return Interval(mean, mean, mean, 0.0, len(x))
    low, high = stats.ttest_1samp(x, 0.0).confidence_interval(CONFIDENCE)
    return Interval(mean, float(low), float(high), std, len(x))


def paired_difference(variant: list[float], baseline: list[float]) -> Difference:
    """``variant - baseline`` seed by seed (equal lengths, the same seeds in the same order)."""
    a, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    diff = a - b
    interval = mean_interval(list(diff))
    if interval.std == 0:
        p_value = 1.0 if interval.mean == 0 else 0.0  # every seed moved by exactly the same amount
        boot = (interval.mean, interval.mean)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # few, repeated values: SciPy notes the degenerate resamples
            p_value = float(stats.ttest_rel(a, b).pvalue)
            result = stats.bootstrap((diff,), np.mean, confidence_level=CONFIDENCE, n_resamples=BOOTSTRAP_RESAMPLES,
                                     method="percentile", rng=np.random.default_rng(0))
        boot = (float(result.confidence_interval.low), float(result.confidence_interval.high))
    return Difference(interval, p_value, boot[0], boot[1], seeds_needed(interval.mean, interval.std))


def seeds_needed(mean_difference: float, sd_difference: float) -> int | None:
    """Seeds for 80% power at 5% (two-sided paired t-test) to find ``mean_difference`` (None if it is 0)."""
    if mean_difference == 0:
        return None
    if sd_difference == 0:
        return 2
    effect = abs(mean_difference) / sd_difference
    for n in range(2, MAX_SEEDS_NEEDED + 1):
        df = n - 1
        t = stats.t.ppf(1 - ALPHA / 2, df)
        noncentrality = effect * math.sqrt(n)
        # SciPy's noncentral t can return NaN for a far tail (a large noncentrality): that tail is ~0.
        upper, lower = np.nan_to_num([stats.nct.sf(t, df, noncentrality), stats.nct.cdf(-t, df, noncentrality)])
        power = upper + lower
        if power >= POWER:
            return n
    return MAX_SEEDS_NEEDED + 1  # shown as "more than 1000"


def adjusted(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (SciPy), in the given order."""
    if not p_values:
        return []
    return [float(q) for q in stats.false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]
