"""Learning curves from a run's ``metrics.csv`` (Lightning's CSV logger), drawn with matplotlib.

Each panel appears only when its metrics were logged: loss, accuracy, learning rate
(LearningRateMonitor's ``lr-*`` or a logged ``*/lr``) and training throughput
(``train/images_per_sec``). Values are per epoch, counted from 1 as the console counts
them; a metric logged several times in an epoch is drawn at its last value.
"""

from __future__ import annotations

import bisect
import csv
import math
from pathlib import Path

# (panel title, y label, which columns belong to it)
PANELS = (
    ("loss", "cross-entropy", lambda c: c.endswith("/loss") or c.endswith("/loss_epoch")),
    ("accuracy", "top-1 accuracy", lambda c: c.endswith("/acc")),
    ("learning rate", "lr", lambda c: c.startswith("lr-") or c.endswith("/lr")),
    ("throughput", "images / s", lambda c: c.endswith("images_per_sec")),
)

Series = dict[str, list[tuple[float, float]]]


def read_metrics(path: Path) -> Series:
    """Every numeric column of a CSV logger's file as (epoch, value) points (epochs from 1), last value per epoch.

    A row logged without an epoch (LearningRateMonitor's ``lr-*``, the diagnostics' per-step
    values) belongs to the epoch its step falls in.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    last_step: dict[float, float] = {}  # epoch -> its last logged step
    for row in rows:
        epoch, step = _float(row.get("epoch")), _float(row.get("step"))
        if epoch is not None and step is not None:
            last_step[epoch] = max(step, last_step.get(epoch, step))
    ends = sorted((step, epoch) for epoch, step in last_step.items())
    series: dict[str, dict[float, float]] = {}
    for row in rows:
        epoch, step = _float(row.get("epoch")), _float(row.get("step"))
        if epoch is None and step is not None and ends:
            epoch = ends[min(bisect.bisect_left(ends, (step, -math.inf)), len(ends) - 1)][1]
        if epoch is None:
            continue
        for column, text in row.items():
            value = _float(text)
            if column in ("epoch", "step") or column is None or value is None:
                continue
            series.setdefault(column, {})[epoch + 1] = value  # Lightning counts epochs from 0
    return {column: sorted(points.items()) for column, points in series.items()}


def final_values(series: Series) -> dict[str, float]:
    """Each metric's value at its last epoch."""
    return {column: points[-1][1] for column, points in series.items() if points}


def curves_figure(series: Series):
    """A matplotlib Figure with one panel per kind of metric logged, or None when none was."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [(title, ylabel, [c for c in sorted(series) if belongs(c)]) for title, ylabel, belongs in PANELS]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5.5 * columns, 3.4 * rows), layout="constrained")
    for index, (title, ylabel, names) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        for name in names:
            epochs, values = zip(*series[name])
            axes.plot(epochs, values, marker="o", markersize=3, label=name.removesuffix("_epoch"))
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(ylabel)
        if title == "learning rate" and all(v > 0 for n in names for _, v in series[n]):
            axes.set_yscale("log")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    return figure


def _float(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
