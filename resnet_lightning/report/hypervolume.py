"""The hypervolume of a multi-objective search's Pareto front, after each completed trial.

The objectives have their own units (an accuracy near 1, MACs in millions), so each is
normalised over the study's completed trials before the volume is measured: 0 is the best
value observed, 1 the worst. The reference point is the worst observed value of every
objective, (1, ..., 1) once normalised, so the hypervolume is the fraction of the box between
the best and the worst observed values that the front dominates: 1 would mean one trial was
the best on every objective. The volume itself is Optuna's (``optuna._hypervolume``, the one
its samplers and ``plot_hypervolume_history`` use; that plot draws with pyplot and changes the
process's matplotlib style, so the curve is drawn here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class History:
    """Hypervolume after each completed trial (in trial order), and the box it is measured in."""

    numbers: list[int]  # the completed trials' numbers
    values: list[float]  # hypervolume of the front of the trials up to and including each one
    best: list[float]  # per objective, the best observed value (normalised to 0)
    worst: list[float]  # per objective, the worst observed value: the reference point (normalised to 1)


def hypervolume_history(numbers: list[int], values: np.ndarray, maximize: list[bool]) -> History:
    """The normalised hypervolume of the front after each trial.

    Args:
        numbers: The completed trials' numbers, in the order they are counted.
        values: Their objective values, shape (trials, objectives); rows with a non-finite value are left out.
        maximize: Per objective, whether larger is better.
    """
    from optuna._hypervolume import compute_hypervolume

    values = np.asarray(values, dtype=np.float64).reshape(len(numbers), len(maximize))
    keep = np.isfinite(values).all(axis=1)
    numbers, values = [n for n, k in zip(numbers, keep) if k], values[keep]
    if not numbers:
        return History([], [], [], [])
    losses = values * np.where(maximize, -1.0, 1.0)  # (trials, objectives), all to be minimised
    low, high = losses.min(axis=0), losses.max(axis=0)
    normalised = (losses - low) / np.where(high > low, high - low, 1.0)  # 0 best observed, 1 worst
    reference = np.ones(len(maximize))
    volumes = [compute_hypervolume(normalised[: k + 1], reference) for k in range(len(numbers))]
    best = [float(v) for v in np.where(maximize, -low, low)]
    worst = [float(v) for v in np.where(maximize, -high, high)]
    return History(numbers, [float(v) for v in volumes], best, worst)


def history_figure(history: History, study: str):
    """Hypervolume against the trial number, as a ``matplotlib.figure.Figure`` (no pyplot)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2), layout="constrained")
    axes = figure.add_subplot()
    axes.step(history.numbers, history.values, where="post", color="#4878a8")
    axes.plot(history.numbers, history.values, "o", color="#4878a8", markersize=4)
    axes.set_xlabel("trial (completed trials only)")
    axes.set_ylabel("hypervolume (normalised)")
    axes.set_ylim(0, max(1.0, max(history.values, default=0)) * 1.05)
    axes.set_title(f"study {study}: hypervolume of the Pareto front after each trial", fontsize=10)
    axes.grid(alpha=0.3)
    return figure
