"""``report.md``: the comparison's table, its two pictures and what the numbers mean, as Markdown."""

from __future__ import annotations

from typing import Any

from .config import Comparison
from .statistics import ALPHA, CONFIDENCE, MAX_SEEDS_NEEDED, POWER


def number(value: Any, digits: int = 4) -> str:
    """A table cell: ``-`` for nothing, 4 significant digits for a float."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _needed(value: Any) -> str:
    if value is None:
        return "-"
    return f"> {MAX_SEEDS_NEEDED}" if value > MAX_SEEDS_NEEDED else str(value)


def _interval(mean: Any, low: Any, high: Any) -> str:
    if mean is None:
        return "-"
    return f"{number(mean)} [{number(low)}, {number(high)}]"


def summary_header(baseline: str) -> list[str]:
    """The column names of the summary table (one row per variant, for one metric)."""
    level = f"{CONFIDENCE:.0%}"
    return ["variant", "seeds", f"mean [{level} CI]", "sd", f"difference to {baseline} [{level} CI]", "p", "p (BH)", "verdict",
            "seeds needed", "MACs", "params", "images/s", "fit time (s)"]


def summary_cells(row: dict[str, Any]) -> list[str]:
    """One row of ``summary.csv`` (values typed) as the summary table's cells, as text."""
    return [
        str(row["variant"]), number(row["seeds"]), _interval(row["mean"], row["ci_low"], row["ci_high"]), number(row["std"]),
        _interval(row["difference"], row["difference_ci_low"], row["difference_ci_high"]), number(row["p_value"], 3),
        number(row["p_value_bh"], 3), str(row["verdict"]), _needed(row["seeds_needed"]), number(row["macs"], 3),
        number(row["params"], 3), number(row["images_per_sec"], 3), number(row["wall_time_s"], 3),
    ]


def reading_notes() -> list[str]:
    """The "How to read it" notes, one per item, in Markdown (``**term**``, ```` `code` ````); the HTML report shows them too."""
    level = f"{CONFIDENCE:.0%}"
    return [
        f"**mean [CI]**: the mean over seeds and its {level} t-interval (`scipy.stats.ttest_1samp`).",
        (f"**difference**: variant minus baseline, paired by seed (runs with one seed share the data order); its {level} "
        "t-interval and two-sided p-value are `scipy.stats.ttest_rel`'s. **No difference shown** means the interval "
        "includes zero: these seeds cannot tell the two apart (which is not evidence that they are equal)."),
        ("**p** is not corrected for testing several variants; **p (BH)** is the Benjamini-Hochberg adjusted value "
        "(`scipy.stats.false_discovery_control`), which bounds the expected share of false findings among those called shown."),
        (f"**seeds needed**: how many seeds a paired t-test at {ALPHA:.0%} needs to find a difference of the observed size "
        f"(mean / sd of the paired differences) with {POWER:.0%} power (`scipy.stats.nct`)."),
        ("A bootstrap interval of each difference (`scipy.stats.bootstrap`, percentile) is in `summary.csv`; with few seeds "
        "it can take only a few values."),
        "Curves: mean over seeds, band +- one standard deviation.",
    ]


def report_markdown(comparison: Comparison, summary: list[dict[str, Any]], runs: list[dict[str, Any]]) -> str:
    """The whole page."""
    lines = [
        f"# Comparison `{comparison.name}`",
        "",
        (f"{len(comparison.variants)} variants x {comparison.seeds} seeds, from `{comparison.path}`; baseline **{comparison.baseline}**. "
        f"Every run is a `resnet-lightning fit` then a `test` of its best checkpoint."),
        "",
    ]
    for metric in comparison.metrics:
        header = summary_header(comparison.baseline)
        lines += [f"## {metric}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(summary_cells(row)) + " |" for row in summary if row["metric"] == metric]
        lines.append("")
    lines += [
        "![training and validation error per epoch](curves.png)",
        "",
        f"![{comparison.metrics[0]} per variant against MACs](summary.png)",
        "",
        "## How to read it",
        "",
        *(f"- {note}" for note in reading_notes()),
        "",
    ]
    failed = [r for r in runs if r["state"] == "FAIL"]
    if failed:
        lines += ["## Runs that failed", ""]
        lines += [f"- {r['variant']} seed {r['seed']} (trial {r['trial']}): {r['fail_reason']}" for r in failed]
        lines += ["", "Run the same command again to retry them; finished runs are kept.", ""]
    return "\n".join(lines)
