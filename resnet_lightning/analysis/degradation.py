"""The degradation experiment (He et al. 2015, Fig. 1 and 6): plain vs residual at two depths.

With plain networks the deeper one has *higher training* error (plain-56 above
plain-20) although it could represent the shallower one; with residual networks
the deeper one is better. This module reads the error curves of finished runs
(W&B run directories, offline or synced, or CSVLogger directories) and draws
them in the paper's layout: plain nets left, residual nets right, training error
dashed, validation error solid.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Curves:
    """Epoch-level error curves of one run.

    Attributes:
        label: ``arch`` (plus ``block`` when set), e.g. ``cifar_plain56``.
        residual: False for plain networks (arch or block named ``plain``).
        depth: The network depth (from the architecture name or ``model_summary.depth``).
        train: ``{epoch: training error}``.
        val: ``{epoch: validation error}``.
    """

    label: str
    residual: bool
    depth: int | None
    train: dict[int, float] = field(default_factory=dict)
    val: dict[int, float] = field(default_factory=dict)


def _error(row: dict[str, Any], stage: str) -> float | None:
    for key, transform in ((f"{stage}/error", lambda v: v), (f"{stage}/acc", lambda v: 1.0 - v)):
        value = row.get(key)
        if value not in (None, "") and not (isinstance(value, float) and math.isnan(value)):
            return transform(float(value))
    return None


def _curves(config: dict[str, Any], rows: Sequence[dict[str, Any]]) -> Curves:
    from ..runs import arch_depth

    # Flat CLI config keys (LoggerSaveConfigCallback), else the LightningModule's own hparams.
    arch = str(config.get("model.arch", config.get("arch", "?")))
    block = config.get("model.block", config.get("block"))
    kwargs = {k.split(".", 2)[2]: v for k, v in config.items() if k.startswith("model.arch_kwargs.")}
    depth = config.get("model_summary.depth") or arch_depth(arch, kwargs)
    label = f"{arch}-{block}" if block else arch
    curves = Curves(label, "plain" not in label, int(depth) if depth else None)
    for row in rows:
        if row.get("epoch") in (None, ""):
            continue
        epoch = int(float(row["epoch"]))
        for stage, target in (("train", curves.train), ("val", curves.val)):
            error = _error(row, stage)
            if error is not None:
                target[epoch] = error
    return curves


class _LenientLoader(yaml.SafeLoader):
    """Safe YAML that reads Python-object tags (a logged callable, say) as None instead of failing."""


_LenientLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def read_curves(path: str | Path) -> Curves:
    """Error curves of one run: a W&B run directory or a CSVLogger version directory.

    Args:
        path: ``.../wandb/offline-run-*`` (read with wandb's own reader) or a
            directory with ``metrics.csv`` and ``hparams.yaml`` (CSVLogger with
            the flat config logged by ``LoggerSaveConfigCallback``).
    """
    path = Path(path)
    if list(path.glob("run-*.wandb")):
        from ..tracking.offline import read_offline_run

        run = read_offline_run(path)
        return _curves(run.config, run.history)
    if (path / "metrics.csv").is_file():
        hparams = path / "hparams.yaml"
        config = yaml.load(hparams.read_text(), Loader=_LenientLoader) if hparams.is_file() else {}
        with open(path / "metrics.csv", newline="") as f:
            return _curves(config or {}, list(csv.DictReader(f)))
    raise FileNotFoundError(
        f"{path} is neither a W&B run directory (run-*.wandb inside) nor a CSVLogger directory (metrics.csv inside)"
    )


def plot_degradation(runs: Sequence[Curves], title: str = "") -> Any:
    """He et al. 2015, Fig. 1/6 layout: plain left, residual right; dashed train, solid validation error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for panel, residual in zip(axes, (False, True)):
        chosen = sorted((r for r in runs if r.residual == residual), key=lambda r: r.depth or 0)
        for i, r in enumerate(chosen):
            color = f"C{i}"
            if r.train:
                panel.plot(list(r.train), [100 * v for v in r.train.values()], ls="--", color=color, lw=1)
            if r.val:
                panel.plot(list(r.val), [100 * v for v in r.val.values()], ls="-", color=color, lw=2, label=r.label)
        panel.set_title("residual networks" if residual else "plain networks")
        panel.set_xlabel("epoch")
        panel.grid(alpha=0.3)
        if chosen:
            panel.legend(title="solid: validation, dashed: train", fontsize="small")
    axes[0].set_ylabel("error (%)")
    figure.suptitle(title or "Degradation: plain vs residual at two depths (He et al. 2015, Fig. 1/6)")
    figure.tight_layout()
    return figure


def degradation_rows(runs: Sequence[Curves]) -> tuple[list[str], list[list[Any]]]:
    """CSV rows ``model, residual, depth, epoch, train_error, val_error``."""
    rows = []
    for r in runs:
        for epoch in sorted(set(r.train) | set(r.val)):
            rows.append([r.label, r.residual, r.depth, epoch, r.train.get(epoch, ""), r.val.get(epoch, "")])
    return ["model", "residual", "depth", "epoch", "train_error", "val_error"], rows
