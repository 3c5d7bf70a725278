"""Side-by-side gradient flow of finished runs (plain-56 vs ResNet-56, say).

Reads the ``gradient_flow.csv`` that :class:`~resnet_lightning.callbacks.GradientFlowMonitor`
wrote at the end of fit (in the W&B run's ``files/`` or the logger's log dir)
and draws one panel per run: gradient norm per block against depth, one line
per logged step. In a plain net the norms spread over orders of magnitude along
the depth (exploding towards the input at initialisation despite BN, vanishing
there once training starts); in a ResNet they stay within a small band.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import AnalysisInputError, AnalysisInputMissing
from .over_depth import draw_over_depth


@dataclass
class GradientFlow:
    """One run's logged gradient norms.

    Attributes:
        label: The run's architecture (and block).
        steps: The logged optimizer steps.
        norms: ``norms[i][b]``: gradient norm of block ``b`` at ``steps[i]``.
    """

    label: str
    steps: list[int]
    norms: list[list[float]]


def _label(directory: Path) -> str:
    for name in ("cli_config.yaml", "config.yaml"):
        path = directory / name
        if path.is_file():
            try:
                config = yaml.safe_load(path.read_text())
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue  # a label is all it gives; the directory's name will do
            model = config.get("model") if isinstance(config, dict) else None
            model = model if isinstance(model, dict) else {}
            return "-".join(str(p) for p in (model.get("arch"), model.get("block")) if p) or directory.name
    return directory.name


def read_gradient_flow(path: str | Path) -> GradientFlow:
    """Read ``gradient_flow.csv`` from a run directory (``path`` or ``path/files``)."""
    path = Path(path)
    if not path.is_dir():
        pattern = " (a shell pattern that matched nothing?)" if any(c in str(path) for c in "*?[") else ""
        raise AnalysisInputMissing(f"--runs {path}: no such directory{pattern}; pass run directories holding gradient_flow.csv")
    for directory in (path, path / "files"):
        csv_path = directory / "gradient_flow.csv"
        if csv_path.is_file():
            try:
                with open(csv_path, newline="") as f:
                    rows = list(csv.reader(f))[1:]
                steps, norms = [int(r[0]) for r in rows], [[float(v) for v in r[1:]] for r in rows]
            except (OSError, UnicodeDecodeError, csv.Error, ValueError, IndexError) as err:
                raise AnalysisInputError(
                    f"{csv_path} is not a gradient-flow table (step, then one norm per block, per row): "
                    f"{' '.join(str(err).split())}; pass runs written by GradientFlowMonitor"
                ) from None
            if not rows:
                raise AnalysisInputError(f"{csv_path} holds no rows; the run logged no gradient flow (did it train a step?)")
            return GradientFlow(_label(directory), steps, norms)
    raise AnalysisInputMissing(
        f"no gradient_flow.csv in {path} or {path / 'files'}; train with the GradientFlowMonitor callback "
        f"(configs/wandb/logger.yaml has it) and a logger"
    )


def plot_gradient_flow(runs: Sequence[GradientFlow]) -> Any:
    """One panel per run, shared log y-axis: norm per block, colour = training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), sharey=True, squeeze=False)
    for ax, run in zip(axes[0], runs):
        draw_over_depth(ax, list(zip(run.steps, run.norms)))
        ax.set_yscale("log")
        ax.set_title(run.label)
        ax.legend(fontsize="small", ncol=2)
    axes[0][0].set_ylabel("gradient norm of the block's parameters")
    figure.suptitle("Gradient flow over depth during training")
    figure.tight_layout()
    return figure


def gradient_flow_rows(runs: Sequence[GradientFlow]) -> tuple[list[str], list[list[Any]]]:
    """CSV rows ``model, step, block, grad_norm``."""
    rows = [[r.label, s, b, v] for r in runs for s, values in zip(r.steps, r.norms) for b, v in enumerate(values)]
    return ["model", "step", "block", "grad_norm"], rows
