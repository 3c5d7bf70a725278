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

from .errors import AnalysisInputError, AnalysisInputMissing


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
    run: str = ""  # the W&B run id (one run's parts share it), else the directory read
    job_type: str = ""  # the W&B job type ("fit", "test", ...; "" for a resumed part or a CSVLogger run)

    @property
    def is_fit(self) -> bool:
        """Whether this is (a part of) a fit: it logged a training or validation error."""
        return bool(self.train or self.val)


def _error(row: dict[str, Any], stage: str) -> float | None:
    for key, transform in ((f"{stage}/error", lambda v: v), (f"{stage}/acc", lambda v: 1.0 - v)):
        value = row.get(key)
        if value not in (None, "") and not (isinstance(value, float) and math.isnan(value)):
            return transform(float(value))
    return None


def _curves(config: dict[str, Any], rows: Sequence[dict[str, Any]], source: str = "the run") -> Curves:
    from ..runs import arch_depth

    # Flat CLI config keys (LoggerSaveConfigCallback), else the LightningModule's own hparams.
    arch = str(config.get("model.arch", config.get("arch", "?")))
    block = config.get("model.block", config.get("block"))
    kwargs = {k.split(".", 2)[2]: v for k, v in config.items() if k.startswith("model.arch_kwargs.")}
    depth = config.get("model_summary.depth") or arch_depth(arch, kwargs)
    label = f"{arch}-{block}" if block else arch
    curves = Curves(label, "plain" not in label, int(depth) if depth else None)
    for number, row in enumerate(rows, 1):
        if row.get("epoch") in (None, ""):
            continue
        try:
            epoch = int(float(row["epoch"]))
            for stage, target in (("train", curves.train), ("val", curves.val)):
                error = _error(row, stage)
                if error is not None:
                    target[epoch] = error
        except (TypeError, ValueError):
            raise AnalysisInputError(
                f"{source}, row {number}: epoch {row.get('epoch')!r} or an error/acc value is not a number; "
                "pass runs written by `resnet-lightning fit` (W&B or CSVLogger)"
            ) from None
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
    if not path.is_dir():
        pattern = " (a shell pattern that matched nothing?)" if any(c in str(path) for c in "*?[") else ""
        raise AnalysisInputMissing(
            f"--runs {path}: no such directory{pattern}; pass W&B run directories (.../wandb/offline-run-*) or "
            "CSVLogger version directories"
        )
    if list(path.glob("run-*.wandb")):
        from ..tracking.offline import read_offline_run

        try:
            run = read_offline_run(path)
        except (RuntimeError, ValueError) as err:  # wandb's reader failed, or wrote what is not JSON
            first = (str(err).strip().splitlines() or [""])[-1]
            raise AnalysisInputError(f"--runs {path}: cannot read this W&B run ({first}); is its run-*.wandb file whole?") from None
        curves = _curves(run.config, run.history, str(path))
        curves.run, curves.job_type = run.run_id or str(path), run.job_type
        return curves
    if (path / "metrics.csv").is_file():
        hparams = path / "hparams.yaml"
        try:
            config = yaml.load(hparams.read_text(), Loader=_LenientLoader) if hparams.is_file() else {}
            with open(path / "metrics.csv", newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, csv.Error) as err:
            raise AnalysisInputError(f"--runs {path}: cannot read its metrics.csv or hparams.yaml ({' '.join(str(err).split())})") from None
        curves = _curves(config if isinstance(config, dict) else {}, rows, str(path / "metrics.csv"))
        curves.run = str(path)
        return curves
    raise AnalysisInputMissing(
        f"--runs {path} is neither a W&B run directory (run-*.wandb inside) nor a CSVLogger directory (metrics.csv "
        "inside); pass e.g. RUN/version_0/wandb/offline-run-* or RUN/version_0"
    )


def read_fits(paths: Sequence[str | Path]) -> tuple[list[Curves], list[str]]:
    """The fits among ``paths``, each W&B run's parts (a fit, its resumed parts) read as one.

    A W&B glob over run directories also finds the parts that ``test``,
    ``validate`` or ``predict`` logged: they have no training or validation error,
    so they are left out and named in the second list.

    Returns:
        The fits' curves (labels made unique where two runs share one), and the skipped paths with why.
    """
    fits: dict[str, Curves] = {}
    skipped = []
    for path in paths:
        curves = read_curves(path)
        if not curves.is_fit:
            skipped.append(f"{path} ({curves.job_type or 'no training or validation error logged'})")
        elif curves.run in fits:  # a later part of the same run: its epochs continue (or replace) the earlier ones
            whole = fits[curves.run]
            whole.train = dict(sorted({**whole.train, **curves.train}.items()))
            whole.val = dict(sorted({**whole.val, **curves.val}.items()))
        else:
            fits[curves.run] = curves
    runs = list(fits.values())
    labels = [r.label for r in runs]
    for r in runs:
        if labels.count(r.label) > 1:
            r.label = f"{r.label} ({r.run})"
    return runs, skipped


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
