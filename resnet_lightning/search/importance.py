"""Reading a study: which dimensions mattered to each objective, and how the front grew.

* ``importance.csv`` / ``importance.png``: per objective, each dimension's importance
  by two of Optuna's evaluators over the COMPLETE trials
  (``optuna.importance.get_param_importances``): fANOVA (Hutter et al. 2014: the share
  of a random forest's variance that each dimension explains, over all trials) and
  PED-ANOVA (Watanabe et al. 2023: how differently the best 10% of trials, by that
  objective, use each dimension from all trials). Each evaluator's importances of one
  objective sum to 1. A dimension that not every completed trial has (a conditional
  one) is left blank: Optuna assesses only the parameters all of them share.
* ``hypervolume.png`` (two or more objectives): the hypervolume of the front after each
  completed trial, as the HTML report draws it (:mod:`resnet_lightning.report.hypervolume`).
"""

from __future__ import annotations

import warnings

import optuna
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.trial import TrialState

from ..report.html import figure_png
from ..report.hypervolume import history_figure, hypervolume_history
from .config import SearchConfig

EVALUATORS = {
    "fanova": lambda: FanovaImportanceEvaluator(seed=0),  # seeded: the same study gives the same numbers
    "ped_anova": PedAnovaImportanceEvaluator,
}
MIN_TRIALS = 2


def param_importances(study: optuna.Study, search: SearchConfig) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Each objective's importances by each evaluator.

    Returns:
        ``{"val/acc fanova": {dimension: importance}, ...}`` (a column per objective and
        evaluator), and one line per column that could not be computed, saying why.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS:
        return {}, [f"{len(complete)} completed trial(s); importances need at least {MIN_TRIALS}"]
    columns, notes = {}, []
    for index, objective in enumerate(search.objectives):
        sign = -1.0 if objective.direction == "maximize" else 1.0
        for name, make in EVALUATORS.items():
            # PED-ANOVA ranks trials by a low target; fANOVA takes the values as they are.
            target = (lambda t, i=index, s=sign: s * t.values[i]) if name == "ped_anova" else (lambda t, i=index: t.values[i])
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "computes the importances ... to achieve low target values": handled above
                    found = optuna.importance.get_param_importances(study, evaluator=make(), target=target)
            except (ValueError, RuntimeError) as err:  # e.g. every completed trial drew the same parameters
                notes.append(f"{objective.name} {name}: none ({' '.join(str(err).split())})")
                continue
            columns[f"{objective.name} {name}"] = {key: float(value) for key, value in found.items()}
    return columns, notes


def importance_rows(columns: dict[str, dict[str, float]], search: SearchConfig) -> list[dict[str, object]]:
    """importance.csv's rows: one per dimension of the space (blank where an evaluator left it out)."""
    return [{"parameter": key, **{column: values.get(key) for column, values in columns.items()}} for key in search.space]


def importance_figure(columns: dict[str, dict[str, float]], search: SearchConfig, title: str):
    """Grouped bars per objective (one bar per evaluator and dimension), as a Figure without pyplot."""
    from matplotlib.figure import Figure

    objectives = [o.name for o in search.objectives if any(c.startswith(f"{o.name} ") for c in columns)]
    keys = list(search.space)[::-1]
    figure = Figure(figsize=(4.5 * len(objectives), 0.8 + 0.45 * len(keys)), layout="constrained")
    axes_list = figure.subplots(1, len(objectives), squeeze=False, sharey=True)[0]
    height = 0.8 / len(EVALUATORS)
    for axes, objective in zip(axes_list, objectives):
        for k, (name, colour) in enumerate(zip(EVALUATORS, ("#4878a8", "#e0a040"))):
            values = columns.get(f"{objective} {name}", {})
            axes.barh([i + (k - 0.5) * height for i in range(len(keys))], [values.get(key, 0.0) for key in keys],
                      height=height, color=colour, label=name)
        axes.set_yticks(range(len(keys)), keys, fontsize=8)
        axes.set_xlim(0, 1)
        axes.set_xlabel(f"importance for {objective}")
        axes.grid(axis="x", alpha=0.3)
    axes_list[0].legend(fontsize=8, loc="best")
    figure.suptitle(f"{title}: parameter importances", fontsize=10)
    return figure


def hypervolume_png(study: optuna.Study, search: SearchConfig) -> bytes | None:
    """hypervolume.png's bytes (None with one objective, or before any trial completed)."""
    if len(search.objectives) < 2:
        return None
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    maximize = [o.direction == "maximize" for o in search.objectives]
    history = hypervolume_history([t.number for t in complete], [t.values for t in complete], maximize)
    return figure_png(history_figure(history, study.study_name)) if history.numbers else None


def importance_text(study: optuna.Study, search: SearchConfig) -> str:
    """The importances as an aligned text table (``search --summary``)."""
    columns, notes = param_importances(study, search)
    if not columns:
        return "importances: " + "; ".join(notes)
    names = ["parameter", *columns]
    rows = [[key, *(_number(values.get(key)) for values in columns.values())] for key in search.space]
    widths = [max(len(n), *(len(r[i]) for r in rows)) for i, n in enumerate(names)]
    lines = ["importances (fANOVA, PED-ANOVA; each column sums to 1):"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [names, *rows]]
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
