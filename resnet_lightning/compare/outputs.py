"""What a comparison leaves in its output directory, rebuilt from the study at any time.

* ``runs.csv``: one row per variant x seed that ran (its metrics, MACs, parameters,
  wall time, training images/s, run directory; why it failed).
* ``summary.csv``: one row per variant and metric: seeds, mean, sd, 95% interval; the
  paired difference to the baseline with its interval, p-value, Benjamini-Hochberg
  adjusted p-value, bootstrap interval, verdict and seeds needed (see :mod:`.statistics`).
* ``curves.png``, ``summary.png`` (see :mod:`.plots`) and ``report.md``, which embeds
  them with the table.

Every file is written beside itself and renamed into place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ..search.outputs import csv_bytes
from ..storage import write_atomically
from .config import Comparison
from .plots import Curves, curves_png, summary_png
from .runner import failed_runs, results
from .statistics import Difference, Interval, adjusted, mean_interval, paired_difference

SUMMARY_COLUMNS = [
    "variant", "metric", "seeds", "mean", "std", "ci_low", "ci_high", "difference", "difference_ci_low", "difference_ci_high",
    "p_value", "p_value_bh", "bootstrap_low", "bootstrap_high", "verdict", "seeds_needed",
    "macs", "params", "wall_time_s", "images_per_sec",
]
COSTS = ("macs", "params", "wall_time_s", "images_per_sec")


@dataclass
class VariantResult:
    """One variant and one metric: its interval, and its difference to the baseline (None for the baseline)."""

    variant: str
    metric: str
    interval: Interval | None
    difference: Difference | None
    p_value_bh: float | None = None


def run_values(trial: FrozenTrial) -> dict[str, Any]:
    """What one run measured: the reported metrics and its costs."""
    attrs = trial.user_attrs
    speed = [v for v in attrs.get("history", {}).get("train/images_per_sec", []) if v is not None]
    return {
        **attrs.get("values", {}),
        "macs": attrs.get("macs"),
        "params": attrs.get("params"),
        "wall_time_s": attrs.get("wall_time"),
        "images_per_sec": sum(speed) / len(speed) if speed else None,
    }


def analyse(study: optuna.Study, comparison: Comparison) -> list[VariantResult]:
    """Every variant x metric with its statistics; pairs with the baseline on the seeds both finished."""
    done = results(study)
    out = []
    for metric in comparison.metrics:
        by_variant: dict[str, dict[int, float]] = {v: {} for v in comparison.variants}  # variant -> seed -> value
        for (variant, seed), trial in done.items():
            value = trial.user_attrs.get("values", {}).get(metric)
            if value is not None and variant in by_variant:
                by_variant[variant][seed] = value
        base = by_variant[comparison.baseline]
        rows = []
        for variant, values in by_variant.items():
            interval = mean_interval(list(values.values())) if len(values) >= 2 else None
            shared = sorted(set(values) & set(base))
            difference = None
            if variant != comparison.baseline and len(shared) >= 2:
                difference = paired_difference([values[s] for s in shared], [base[s] for s in shared])
            rows.append(VariantResult(variant, metric, interval, difference))
        tested = [r for r in rows if r.difference is not None]
        for row, q in zip(tested, adjusted([r.difference.p_value for r in tested])):
            row.p_value_bh = q
        out += rows
    return out


def verdict(row: VariantResult, baseline: str) -> str:
    """``baseline``, ``higher (shown)``, ``lower (shown)``, ``no difference shown`` or why there is none yet."""
    if row.variant == baseline:
        return "baseline"
    if row.difference is None:
        return "too few paired seeds"
    if not row.difference.shown:
        return "no difference shown"
    return "higher (shown)" if row.difference.interval.mean > 0 else "lower (shown)"


def mean_costs(study: optuna.Study, comparison: Comparison) -> dict[str, dict[str, float | None]]:
    """Per variant, the mean over its finished runs of each of :data:`COSTS`."""
    done = results(study)
    costs = {}
    for variant in comparison.variants:
        runs = [run_values(t) for (v, _), t in done.items() if v == variant]
        costs[variant] = {}
        for name in COSTS:
            values = [r[name] for r in runs if r.get(name) is not None]
            costs[variant][name] = sum(values) / len(values) if values else None
    return costs


def summary_rows(analysis: list[VariantResult], costs: dict[str, dict[str, float | None]], baseline: str) -> list[dict[str, Any]]:
    rows = []
    for r in analysis:
        i, d = r.interval, r.difference
        rows.append({
            "variant": r.variant, "metric": r.metric, "seeds": i.n if i else None,
            "mean": i and i.mean, "std": i and i.std, "ci_low": i and i.low, "ci_high": i and i.high,
            "difference": d and d.interval.mean, "difference_ci_low": d and d.interval.low, "difference_ci_high": d and d.interval.high,
            "p_value": d and d.p_value, "p_value_bh": r.p_value_bh, "bootstrap_low": d and d.bootstrap_low,
            "bootstrap_high": d and d.bootstrap_high, "verdict": verdict(r, baseline), "seeds_needed": d and d.seeds_needed,
            **costs[r.variant],
        })
    return rows


def run_rows(study: optuna.Study, comparison: Comparison) -> list[dict[str, Any]]:
    rows = [{"variant": v, "seed": s, "state": "COMPLETE", "trial": t.number, **run_values(t), "run_dir": t.user_attrs.get("run_dir"),
             "fail_reason": None} for (v, s), t in sorted(results(study).items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    for t in failed_runs(study):
        rows.append({"variant": t.params.get("variant"), "seed": t.params.get("seed"), "state": "FAIL", "trial": t.number,
                     "run_dir": t.user_attrs.get("run_dir"), "fail_reason": t.user_attrs.get("fail_reason")})
    return rows


def error_curves(study: optuna.Study, comparison: Comparison, metric: str) -> Curves:
    """Per variant (in the file's order), ``1 - metric`` at each epoch over the seeds that finished."""
    curves: Curves = {}
    done = results(study)
    for (variant, _), trial in sorted(done.items(), key=lambda kv: (list(comparison.variants).index(kv[0][0]), kv[0][1])):
        values = trial.user_attrs.get("history", {}).get(metric, [])
        epochs = trial.user_attrs.get("history_epochs", {}).get(metric, range(1, len(values) + 1))
        for epoch, value in zip(epochs, values):
            if value is not None:
                curves.setdefault(variant, {}).setdefault(int(epoch), []).append(1.0 - value)
    return curves


def write_outputs(study: optuna.Study, comparison: Comparison, output: Path) -> dict[str, Path]:
    """Write runs.csv, summary.csv, curves.png, summary.png and report.md; returns what was written."""
    from .report_md import report_markdown  # the page reads the same rows

    analysis = analyse(study, comparison)
    costs = mean_costs(study, comparison)
    summary = summary_rows(analysis, costs, comparison.baseline)
    runs = run_rows(study, comparison)
    written = {name: output / name for name in ("runs.csv", "summary.csv", "curves.png", "summary.png", "report.md")}
    run_columns = ["variant", "seed", "state", "trial", *comparison.metrics, *COSTS, "run_dir", "fail_reason"]
    write_atomically(written["runs.csv"], csv_bytes(runs, run_columns))
    write_atomically(written["summary.csv"], csv_bytes(summary, SUMMARY_COLUMNS))
    title = f"comparison {comparison.name}"
    write_atomically(written["curves.png"], curves_png(error_curves(study, comparison, "train/acc"), error_curves(study, comparison, "val/acc"), title))
    headline = {r.variant: r.interval for r in analysis if r.metric == comparison.metrics[0] and r.interval is not None}
    macs = {v: c["macs"] for v, c in costs.items()}
    write_atomically(written["summary.png"], summary_png(headline, macs, comparison.metrics[0], comparison.baseline, title))
    write_atomically(written["report.md"], report_markdown(comparison, summary, runs).encode())
    return written
