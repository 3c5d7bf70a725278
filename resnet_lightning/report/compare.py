"""A comparison's report, from what ``resnet-lightning compare`` leaves in its output directory.

``summary.csv`` (one table per metric: the mean with its interval, the paired difference to the
baseline, p-values, verdict, seeds needed, costs), ``curves.png`` and ``summary.png``, ``runs.csv``
(each run linked to its own ``report.html``), the notes on how to read the numbers
(:func:`resnet_lightning.compare.report_md.reading_notes`, the ones ``report.md`` has), and, from
the study in the journal file, what the comparison is (its variants' options, base configs, fixed
options; a study kept in a database through ``--storage`` is not read from here).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import yaml

from . import html
from .search import JOURNAL_FILE, _run_link, _short

OUTPUT_FILES = ("summary.csv", "runs.csv")
STORED = "comparison"  # the study's user attribute in which `compare` keeps the comparison as it last ran
FIGURES = (
    ("curves.png", "curves.png: training and validation error per epoch, mean over seeds and a band of +- 1 sd"),
    ("summary.png", "summary.png: the headline metric per variant with its 95% interval, against MACs"),
)
RUN_COSTS = (("macs", "MACs"), ("params", "params"), ("images_per_sec", "images/s"), ("wall_time_s", "fit time (s)"))


def is_compare(directory: Path) -> bool:
    """Whether ``directory`` looks like a comparison's output directory (a search's has trials.csv instead)."""
    return any((directory / name).is_file() for name in OUTPUT_FILES) and not (directory / "trials.csv").is_file()


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A CSV file the comparison wrote, each value typed back: None for an empty cell, int or float where it is one."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{key: _typed(value) for key, value in row.items()} for row in csv.DictReader(f)]


def comparison_info(output: Path) -> dict[str, Any] | None:
    """What the comparison is, from the study in ``output``'s journal: name, path, configs, baseline, seeds, metrics, definition."""
    journal = output / JOURNAL_FILE
    if not journal.is_file():
        return None
    import optuna

    from ..search.storage import open_storage

    storage = open_storage(str(journal))
    for name in optuna.get_all_study_names(storage):
        stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get(STORED)
        if stored is not None:
            return {"name": name, **stored}
    return None


def compare_report(output: Path) -> str:
    """The HTML page of the comparison whose outputs are in ``output``."""
    # Late: the compare package imports Optuna and SciPy, which a fit's own page (report.run, at every fit's end) needs not.
    from ..compare.report_md import reading_notes

    info = comparison_info(output) or {}
    summary, runs = read_rows(output / "summary.csv"), read_rows(output / "runs.csv")
    metrics = list(dict.fromkeys(str(row["metric"]) for row in summary))
    baseline = info.get("baseline") or next((row["variant"] for row in summary if row["verdict"] == "baseline"), "?")
    variants = list(info.get("definition", {}).get("variants") or dict.fromkeys(str(row["variant"]) for row in summary))
    states: dict[str, int] = {}
    for row in runs:
        states[str(row["state"])] = states.get(str(row["state"]), 0) + 1
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(states.items())) or "none yet"
    seeds = info.get("seeds") or len({row["seed"] for row in runs})
    subtitle = (f"{output.resolve()} · {len(variants)} variants x {seeds} seeds, baseline {baseline} · runs: {counts} · "
                "each run a fit, then a test of its best checkpoint")
    sections = [_metric_section(metric, summary, baseline) for metric in metrics] or [
        html.section("Summary", html.note("no summary.csv here (or it holds no variant yet)"))
    ]
    sections += [
        _figures_section(output),
        html.section("How to read it", "<ul>\n" + "\n".join(f"<li>{_inline(n)}</li>" for n in reading_notes()) + "\n</ul>"),
        html.section("Runs", _runs_table(runs, metrics, output)),
        html.section("The comparison", _definition(info)),
    ]
    return html.page(f"Comparison {info.get('name') or output.resolve().name}", subtitle, sections)


def _metric_section(metric: str, summary: list[dict[str, Any]], baseline: str) -> str:
    from ..compare.report_md import summary_cells, summary_header

    rows = [summary_cells(row) for row in summary if row["metric"] == metric]
    return html.section(metric, html.table(summary_header(str(baseline)), rows))


def _figures_section(output: Path) -> str:
    parts = [html.image((output / name).read_bytes(), caption) for name, caption in FIGURES if (output / name).is_file()]
    if not parts:
        parts = [html.note("no curves.png or summary.png here: no run has finished")]
    return html.section("Curves and intervals", *parts)


def _runs_table(runs: list[dict[str, Any]], metrics: list[str], output: Path) -> str:
    if not runs:
        return html.note("no runs.csv here (or no run has finished or failed yet)")
    columns = ["variant", "seed", "state", *metrics, *(label for _, label in RUN_COSTS), "fail reason", "run", "run report"]
    rows = [
        [row["variant"], row["seed"], row["state"], *(html.number(row.get(m)) for m in metrics),
         *(html.number(row.get(key)) for key, _ in RUN_COSTS), row.get("fail_reason"), _short(row.get("run_dir")),
         _run_link(row.get("run_dir"), output)]
        for row in runs
    ]
    return html.table(columns, rows, raw_last=True)


def _definition(info: dict[str, Any]) -> str:
    if not info:
        return html.note(f"no {JOURNAL_FILE} here: the study is in the --storage database the comparison used")
    definition = info.get("definition", {})
    variants = definition.get("variants", {})
    parts = [
        html.paragraph(f"from {info.get('path')}; metrics: {', '.join(info.get('metrics', []))} (the first is the headline)"),
        html.table(["variant", "fit options"],
                   [(f"{name} (baseline)" if name == info.get("baseline") else name,
                     ", ".join(f"{k}: {v}" for k, v in options.items()) or "(the base configuration)")
                    for name, options in variants.items()]),
        html.preformatted(yaml.safe_dump({"configs": info.get("configs", []), "fixed": definition.get("fixed", {})},
                                         sort_keys=False)),
    ]
    return "\n".join(parts)


def _inline(markdown: str) -> str:
    """A note's Markdown (``**bold**``, ```` `code` ````) as HTML, everything else escaped."""
    text = html.escape(markdown)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _typed(value: str | None) -> Any:
    if value is None or value == "":
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value
