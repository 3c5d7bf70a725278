"""What a search leaves in its output directory, rebuilt from the study at any time.

* ``trials.csv``: one row per trial (number, state, parameters, objective values,
  MACs, parameter count, latency and why a trial was over budget when the search uses
  them, epochs, wall time, run directory, why it failed).
* ``pareto.csv`` / ``pareto.png``: the non-dominated trials (over the objectives when
  there are several; over the objective and MACs when there is one), and accuracy
  against MACs with that front marked, each point labelled by block and depth. Once
  the front is confirmed (:mod:`.confirm`), each point's mean, standard deviation and
  95% interval over its seeds, and whether it is shown better than every cheaper point
  (:mod:`.intervals`); the plot draws the intervals and marks the points not shown better.
* ``best.yaml``: the best trial's whole fit config, with the ``seed_everything`` its run
  used (``fit --config best.yaml`` retrains it as it ran); with several objectives
  ``best/trial-NNNN.yaml`` for every Pareto point, and ``best.yaml`` is the one with the
  best first objective.
* ``importance.csv`` / ``importance.png`` and ``hypervolume.png``: see :mod:`.importance`.

Every file is written beside itself and renamed into place, so workers that
finish at once leave whole files.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from ..report.html import figure_png
from ..storage import write_atomically
from .config import SearchConfig
from .fit_args import fit_args, resolved_config
from .importance import (
    hypervolume_png,
    importance_figure,
    importance_rows,
    importance_text,
    param_importances,
)
from .intervals import (
    NOT_SHOWN,
    PointStats,
    front_text,
    interval_cells,
    interval_columns,
    point_stats,
)
from .objectives import Objective

CONFIRM_SUFFIX = "-confirm"
SEED_KEY = "seed_everything"  # compare.config.SEED_KEY (compare imports this module)


def label(trial: FrozenTrial) -> str:
    """``plain d56``: the trial's block and depth; ``highway/highway/plain 1-2-2 w8-16-32`` for a per-stage shape
    (its searched list elements); else its run directory's name."""
    parts = []
    if "model.block" in trial.params:
        parts.append(str(trial.params["model.block"]))
    if "model.arch_kwargs.depth" in trial.params:
        parts.append(f"d{trial.params['model.arch_kwargs.depth']}")
    for name, sep, prefix in (("blocks", "/", ""), ("layers", "-", ""), ("widths", "-", "w")):
        head = f"model.arch_kwargs.{name}."
        indices = sorted(int(k[len(head):]) for k in trial.params if k.startswith(head) and k[len(head):].isdigit())
        stages = [str(trial.params[f"{head}{i}"]) for i in indices]
        if stages:
            parts.append(prefix + sep.join(stages))
    if not parts and trial.user_attrs.get("run_dir"):
        parts.append(Path(trial.user_attrs["run_dir"]).parent.name)
    return " ".join(parts) or f"trial {trial.number}"


def columns(search: SearchConfig) -> list[str]:
    """trials.csv's columns."""
    names = ["number", "state", *search.space, *(o.name for o in search.objectives)]
    names += ["macs", "params", *(["latency_ms"] if search.latency else []), *(["over_budget"] if search.constraints else [])]
    names += ["epochs", "same_as", "wall_time", "fit_seconds", "run_dir", "fail_reason"]
    return list(dict.fromkeys(names))  # an objective named macs is one column


def row(trial: FrozenTrial, search: SearchConfig) -> dict[str, Any]:
    """One trial as a trials.csv row."""
    values = dict(zip((o.name for o in search.objectives), trial.values or []))
    attrs = trial.user_attrs
    return {
        "number": trial.number,
        "state": trial.state.name,
        **{key: trial.params.get(key) for key in search.space},
        **{key: attrs.get(key) for key in ("macs", "params", "latency_ms", "over_budget", "epochs", "same_as", "wall_time",
                                           "fit_seconds", "run_dir", "fail_reason")},
        **values,
    }


def csv_bytes(rows: list[dict[str, Any]], names: list[str]) -> bytes:
    """``rows`` as CSV with the columns ``names`` (extra keys left out), as bytes to write atomically."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def pareto_trials(study: optuna.Study, search: SearchConfig) -> list[FrozenTrial]:
    """The non-dominated COMPLETE trials (see the module docstring), by MACs."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(search.objectives) > 1:
        front = study.best_trials
    else:
        axes = [(search.objectives[0], 0), (Objective("macs", "minimize"), None)]
        front = _non_dominated([t for t in complete if t.user_attrs.get("macs") is not None], axes)
    return sorted(front, key=lambda t: (t.user_attrs.get("macs") or 0, t.number))


def _non_dominated(trials: list[FrozenTrial], axes: list[tuple[Objective, int | None]]) -> list[FrozenTrial]:
    def point(t: FrozenTrial) -> list[float]:
        # Each axis turned into "smaller is better".
        values = [t.values[i] if i is not None else t.user_attrs[o.name] for o, i in axes]
        return [-v if o.direction == "maximize" else v for v, (o, _) in zip(values, axes)]

    points = {t.number: point(t) for t in trials}
    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))
    return [t for t in trials if not any(dominates(points[o.number], points[t.number]) for o in trials)]


def confirm_study_name(study_name: str) -> str:
    """The study that confirms a search's front (:mod:`.confirm`), beside the search's in its storage."""
    return study_name + CONFIRM_SUFFIX


def variants(front: list[FrozenTrial]) -> dict[int, str]:
    """Each Pareto point's name in the confirmation, ``trial-NNNN``: points with the same parameters (a sampler may
    draw a configuration twice) share the first one's name, and so its retrains."""
    first: dict[str, str] = {}
    for trial in sorted(front, key=lambda t: t.number):
        first.setdefault(json.dumps(trial.params, sort_keys=True, default=str), f"trial-{trial.number:04d}")
    return {t.number: first[json.dumps(t.params, sort_keys=True, default=str)] for t in front}


def trial_seed(trial: FrozenTrial, search: SearchConfig | None = None) -> int | None:
    """The ``seed_everything`` the trial ran with: its run's config.yaml (which holds the seed Lightning drew when
    the config said ``true``), else (given ``search``) what the search's configs resolve to, else None."""
    config = Path(trial.user_attrs["run_dir"]) / "config.yaml" if trial.user_attrs.get("run_dir") else None
    if config is not None and config.is_file():
        seed = (yaml.safe_load(config.read_text()) or {}).get(SEED_KEY)
    elif search is not None:
        seed = (yaml.safe_load(resolved_config(fit_args(search, trial.params))) or {}).get(SEED_KEY)
    else:
        seed = None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def retrains(study: optuna.Study, front: list[FrozenTrial]) -> dict[int, list[dict[str, Any]]]:
    """Per Pareto trial number, what each finished retrain of the confirmation recorded (its first run per seed)."""
    try:
        confirm = optuna.load_study(study_name=confirm_study_name(study.study_name), storage=study._storage)
    except KeyError:  # not confirmed
        return {}
    seen, found = set(), {}
    for run in confirm.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = (run.params.get("variant"), run.params.get("seed"))
        if key not in seen:
            seen.add(key)
            found.setdefault(key[0], []).append(run.user_attrs)
    names = variants(front)
    return {t.number: found.get(names[t.number], []) for t in front}


def write_outputs(study: optuna.Study, search: SearchConfig, output: Path) -> dict[str, Path]:
    """Write trials.csv, pareto.csv, pareto.png and the best configs; returns what was written."""
    trials = study.get_trials(deepcopy=False)
    names = columns(search)
    written = {"trials.csv": output / "trials.csv"}
    write_atomically(written["trials.csv"], csv_bytes([row(t, search) for t in trials], names))
    front = pareto_trials(study, search)
    stats = point_stats(front, search.objectives, retrains(study, front))
    written["pareto.csv"] = output / "pareto.csv"
    rows = [{**row(t, search), "label": label(t), **interval_cells(stats.get(t.number))} for t in front]
    write_atomically(written["pareto.csv"], csv_bytes(rows, [*names, "label", *interval_columns(search.objectives)]))
    if any(t.state == TrialState.COMPLETE for t in trials):
        written["pareto.png"] = output / "pareto.png"
        write_atomically(written["pareto.png"], pareto_plot(trials, front, search, study.study_name, stats))
        for path in write_best_configs(study, search, front, output):
            written[str(path.relative_to(output))] = path
    importances, _ = param_importances(study, search)
    written["importance.csv"] = output / "importance.csv"
    write_atomically(written["importance.csv"], csv_bytes(importance_rows(importances, search), ["parameter", *importances]))
    if importances:
        written["importance.png"] = output / "importance.png"
        write_atomically(written["importance.png"], figure_png(importance_figure(importances, search, study.study_name)))
    hypervolume = hypervolume_png(study, search)
    if hypervolume is not None:
        written["hypervolume.png"] = output / "hypervolume.png"
        write_atomically(written["hypervolume.png"], hypervolume)
    return written


def write_best_configs(study: optuna.Study, search: SearchConfig, front: list[FrozenTrial], output: Path) -> list[Path]:
    """``best.yaml`` (and ``best/trial-NNNN.yaml`` per Pareto point with several objectives)."""
    first = search.objectives[0]
    if len(search.objectives) == 1:
        chosen = [study.best_trial]
    else:
        chosen = front
    paths = []
    for trial in chosen:
        text = _best_config(study, search, trial)
        if len(search.objectives) > 1:
            paths.append(output / "best" / f"trial-{trial.number:04d}.yaml")
            write_atomically(paths[-1], text.encode())
    # A Pareto point of an earlier write that a later trial dominates is no longer a best config.
    for stale in set((output / "best").glob("trial-*.yaml")) - set(paths):
        stale.unlink(missing_ok=True)
    best = max(chosen, key=lambda t: t.values[0] if first.direction == "maximize" else -t.values[0])
    paths.append(output / "best.yaml")
    write_atomically(paths[-1], _best_config(study, search, best).encode())
    return paths


def _best_config(study: optuna.Study, search: SearchConfig, trial: FrozenTrial) -> str:
    values = ", ".join(f"{o.name}={v:.6g}" for o, v in zip(search.objectives, trial.values))
    header = (
        f"# Study {study.study_name!r}, trial {trial.number} ({label(trial)}): {values}\n"
        f"# Its run: {trial.user_attrs.get('run_dir')}\n"
        "# Retrain it as is:  resnet-lightning fit --config THIS_FILE\n"
    )
    seed = trial_seed(trial)  # a config's `seed_everything: true` drew it when the trial ran (without a run: the config's)
    return header + resolved_config([*fit_args(search, trial.params), *([f"--seed_everything={seed}"] if seed is not None else [])])


def pareto_plot(trials: list[FrozenTrial], front: list[FrozenTrial], search: SearchConfig, title: str,
                stats: dict[int, PointStats] | None = None) -> bytes:
    """Accuracy (the first metric objective) against MACs, coloured by block, the front marked; PNG bytes.

    Confirmed points (``stats``) get their 95% interval as an error bar at the mean, and a
    red cross when they are not shown better than a cheaper point.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = next((o for o in search.objectives if o.is_metric), search.objectives[0])
    index = [o.name for o in search.objectives].index(metric.name)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("macs")]
    blocks = sorted({str(t.params.get("model.block", "")) for t in done})
    colours = dict(zip(blocks, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for block in blocks:
        mine = [t for t in done if str(t.params.get("model.block", "")) == block]
        ax.scatter([t.user_attrs["macs"] for t in mine], [t.values[index] for t in mine], s=28, alpha=0.75,
                   color=colours[block], label=block or "trials")
    for t in done:
        ax.annotate(label(t), (t.user_attrs["macs"], t.values[index]), fontsize=6, alpha=0.8,
                    xytext=(3, 2), textcoords="offset points")
    marked = [t for t in front if t.user_attrs.get("macs")]
    if marked:
        ax.step([t.user_attrs["macs"] for t in marked], [t.values[index] for t in marked], where="post",
                color="black", linewidth=1.2, label="Pareto front")
        ax.scatter([t.user_attrs["macs"] for t in marked], [t.values[index] for t in marked], s=90,
                   facecolors="none", edgecolors="black", linewidths=1.2)
    _draw_intervals(ax, marked, metric.name, stats or {})
    ax.set_xscale("log")
    ax.set_xlabel("MACs per image (count_macs at the data's input size)")
    ax.set_ylabel(f"{metric.name} (best epoch)")
    ax.set_title(f"{title}: {len(done)} complete trials")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def _draw_intervals(ax: Any, front: list[FrozenTrial], metric: str, stats: dict[int, PointStats]) -> None:
    confirmed = [(t, stats[t.number]) for t in front if t.number in stats and stats[t.number].intervals.get(metric)]
    if not confirmed:
        return
    x = [t.user_attrs["macs"] for t, _ in confirmed]
    means = [p.intervals[metric].mean for _, p in confirmed]
    below = [p.intervals[metric].mean - p.intervals[metric].low for _, p in confirmed]
    above = [p.intervals[metric].high - p.intervals[metric].mean for _, p in confirmed]
    ax.errorbar(x, means, yerr=[below, above], fmt="D", color="black", markersize=4, capsize=4, linewidth=1,
                label=f"mean and 95% interval over {confirmed[0][1].intervals[metric].n} seeds")
    weak = [(xi, m) for xi, m, (_, p) in zip(x, means, confirmed) if p.vs_cheaper == NOT_SHOWN]
    if weak:
        ax.scatter([w[0] for w in weak], [w[1] for w in weak], marker="x", s=120, color="red", linewidths=1.5,
                   label="not shown better than a cheaper point", zorder=5)


def summary_table(study: optuna.Study, search: SearchConfig) -> str:
    """The trials as an aligned text table (``search --summary``)."""
    names = [n for n in columns(search) if n not in ("run_dir",)]
    rows = [[_cell(row(t, search).get(n)) for n in names] for t in study.get_trials(deepcopy=False)]
    widths = [max(len(n), *(len(r[i]) for r in rows)) if rows else len(n) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    counts = {s.name: sum(t.state == s for t in study.get_trials(deepcopy=False)) for s in TrialState}
    lines.append(f"{study.study_name}: " + ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n))
    front = pareto_trials(study, search)
    stats = point_stats(front, search.objectives, retrains(study, front))
    lines += ["", front_text(front, search.objectives, stats, {t.number: label(t) for t in front})]
    lines += ["", importance_text(study, search)]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
