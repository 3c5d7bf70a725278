"""A search's report, from what ``resnet-lightning search --output DIR`` leaves in DIR.

``trials.csv``, ``pareto.csv``, ``pareto.png`` and ``best.yaml`` (:mod:`resnet_lightning.search.outputs`),
and, from the study in DIR's journal file (``study.journal``), the hyperparameter importances and
the hypervolume of the Pareto front after each completed trial (:mod:`.hypervolume`;
a study kept in a database through ``--storage`` is not read from here).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from . import html

OUTPUT_FILES = ("trials.csv", "pareto.csv")
JOURNAL_FILE = "study.journal"  # resnet_lightning.search.storage.JOURNAL_FILE, without importing Optuna to say so
CONFIRM_SUFFIX = "-confirm"  # resnet_lightning.search.outputs.CONFIRM_SUFFIX (which imports the CLI: a cycle)
MAX_ROWS = 500


def is_search(directory: Path) -> bool:
    """Whether ``directory`` looks like a search's output directory."""
    return any((directory / name).is_file() for name in (*OUTPUT_FILES, JOURNAL_FILE))


def search_report(output: Path) -> str:
    """The HTML page of the search whose outputs are in ``output``."""
    rows = _csv(output / "trials.csv")
    states: dict[str, int] = {}
    for row in rows:
        states[row.get("state", "")] = states.get(row.get("state", ""), 0) + 1
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(states.items())) or "no trials yet"
    columns = list(rows[0]) if rows else []
    sections = [
        _pareto_section(output),
        html.section("Hypervolume", *_hypervolume(output / JOURNAL_FILE, columns)),
        html.section("Importances", *_importances(output / JOURNAL_FILE, columns)),
        html.section("Trials", _table(rows, "trials.csv", output)),
    ]
    best = output / "best.yaml"
    if best.is_file():
        sections.append(html.section("Best configuration (best.yaml: fit --config best.yaml retrains it)",
                                     html.preformatted(best.read_text())))
    return html.page(f"Search {output.resolve().name}", f"{output.resolve()} · {len(rows)} trials: {counts}", sections)


def _pareto_section(output: Path) -> str:
    parts = []
    png = output / "pareto.png"
    if png.is_file():
        parts.append(html.image(png.read_bytes(), "pareto.png: accuracy against MACs, the front marked"))
    else:
        parts.append(html.note("no pareto.png: no trial has completed"))
    front = _csv(output / "pareto.csv")
    if front:
        parts.append(_table(front, "pareto.csv"))
    if not any(row.get("vs_cheaper") for row in front):
        parts.append(html.note("no intervals: a search's trials are single fits; `search --confirm K` retrains each Pareto "
                               "point with K further seeds and adds their intervals here"))
    return html.section("Pareto front", *parts)


NO_JOURNAL = f"no {JOURNAL_FILE} here: the study is in the --storage database the search used"


def _journal_studies(journal: Path) -> list[tuple[str, Any, list[Any]]] | None:
    """Each study in a search's journal with its COMPLETE trials; None when there is no journal (a database study)."""
    if not journal.is_file():
        return None
    import optuna
    from optuna.trial import TrialState

    from ..search.storage import open_storage

    storage = open_storage(str(journal))
    names = [n for n in optuna.get_all_study_names(storage) if not n.endswith(CONFIRM_SUFFIX)]  # retrains: in pareto.csv
    studies = [optuna.load_study(study_name=name, storage=storage) for name in names]
    return [(s.study_name, s, s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) for s in studies]


def _hypervolume(journal: Path, columns: list[str]) -> list[str]:
    """Per multi-objective study: the front's hypervolume after each completed trial, and its reference point."""
    studies = _journal_studies(journal)
    if studies is None:
        return [html.note(NO_JOURNAL)]
    from optuna.study import StudyDirection

    from .hypervolume import history_figure, hypervolume_history

    parts = []
    for name, study, complete in studies:
        names = study.metric_names or _objective_names(columns, complete, len(study.directions))
        if len(study.directions) < 2:
            parts.append(html.note(f"study {name}: one objective ({names[0]}); a hypervolume needs two or more"))
            continue
        maximize = [d == StudyDirection.MAXIMIZE for d in study.directions]
        history = hypervolume_history([t.number for t in complete], [t.values for t in complete], maximize)
        if not history.numbers:
            parts.append(html.note(f"study {name}: no completed trial yet"))
            continue
        parts.append(f"<h3>{html.escape(f'study {name}: ' + ', '.join(names))}</h3>")
        parts.append(html.paragraph(
            f"{history.values[-1]:.3f} after {len(history.numbers)} completed trials. Each objective is normalised over "
            "the completed trials (0: the best value observed, 1: the worst); the reference point is the worst observed "
            "value of each objective, so 1 would be one trial best on all of them."
        ))
        parts.append(html.image(html.figure_png(history_figure(history, name)), "hypervolume after each completed trial"))
        parts.append(html.table(
            ["objective", "direction", "best observed (0)", "worst observed: reference point (1)"],
            [(n, d.name.lower(), html.number(b), html.number(w))
             for n, d, b, w in zip(names, study.directions, history.best, history.worst)],
        ))
    return parts or [html.note("the journal holds no study")]


def _importances(journal: Path, columns: list[str]) -> list[str]:
    """Optuna's parameter importances per objective (fANOVA), or a note saying why there are none."""
    studies = _journal_studies(journal)
    if studies is None:
        return [html.note(NO_JOURNAL)]
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    parts = []
    for name, study, complete in studies:
        if len(complete) < 2:
            parts.append(html.note(f"study {name}: {len(complete)} completed trial(s); importances need at least 2"))
            continue
        names = study.metric_names or _objective_names(columns, complete, len(study.directions))
        for index, objective in enumerate(names):
            try:
                importances = optuna.importance.get_param_importances(
                    study, evaluator=FanovaImportanceEvaluator(seed=0), target=lambda t, i=index: t.values[i]
                )
            except (ValueError, RuntimeError) as err:  # e.g. every completed trial drew the same parameters
                parts.append(html.note(f"study {name}, {objective}: no importances ({err})"))
                continue
            parts.append(f"<h3>{html.escape(f'study {name}: {objective}')}</h3>")
            parts.append(html.image(html.figure_png(_bars(importances, objective)), f"importances for {objective} (fANOVA)"))
            parts.append(html.table(["parameter", "importance"], [(k, f"{v:.3f}") for k, v in importances.items()]))
    return parts or [html.note("the journal holds no study")]


def _objective_names(columns: list[str], trials: list, count: int) -> list[str]:
    """trials.csv names the objectives between the parameters and ``macs``; else ``objective i``."""
    params = {name for trial in trials for name in trial.params}
    between = columns[columns.index("state") + 1 : columns.index("macs")] if {"state", "macs"} <= set(columns) else []
    names = [c for c in between if c not in params]
    return names if len(names) == count else [f"objective {i}" for i in range(count)]


def _bars(importances: dict[str, float], objective: str):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 0.5 + 0.4 * max(1, len(importances))), layout="constrained")
    axes = figure.add_subplot()
    names = list(importances)[::-1]
    axes.barh(names, [importances[n] for n in names], color="#4878a8")
    axes.set_xlabel(f"importance for {objective}")
    axes.set_xlim(0, 1)
    return figure


def _table(rows: list[dict[str, str]], name: str, output: Path | None = None) -> str:
    if not rows:
        return html.note(f"no {name} here (or it holds no trials)")
    columns = [c for c in rows[0] if any(row.get(c) for row in rows)]  # columns with something in them
    shown = [[html.number(row.get(c)) if c != "run_dir" else _short(row.get(c)) for c in columns] for row in rows[:MAX_ROWS]]
    more = html.note(f"{len(rows) - MAX_ROWS} more rows in {name}") if len(rows) > MAX_ROWS else ""
    links = [_run_link(row.get("run_dir"), output) for row in rows[:MAX_ROWS]] if output is not None else []
    if any(links):  # each trial's own run report, as a link relative to this page (the directory can move)
        columns, shown = [*columns, "run report"], [[*cells, link] for cells, link in zip(shown, links)]
    return html.table(columns, shown, raw_last=bool(any(links))) + more


def _short(run_dir: str | None) -> str:
    """``digits-cifar_resnet-basic-d8/version_0`` for a trial's run directory."""
    return "/".join(Path(run_dir).parts[-2:]) if run_dir else ""


def _run_link(run_dir: str | None, output: Path) -> str:
    if not run_dir:
        return ""
    report = Path(run_dir) / "report.html"
    try:
        relative = report.resolve().relative_to(output.resolve())
    except ValueError:
        return ""
    return f"<a href=\"{html.escape(relative.as_posix())}\">report</a>" if report.is_file() else ""


def _csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
