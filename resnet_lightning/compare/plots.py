"""The comparison's two pictures, drawn with matplotlib (PNG bytes).

* ``curves.png``: training error and validation error against epoch, the mean over
  seeds as a line and mean +- one standard deviation as a band, one colour per
  variant: the layout of He et al. 2015, Figure 1, where the deeper plain network
  has the higher *training* error (the degradation problem).
* ``summary.png``: the headline metric of each variant with its 95% interval, against
  its MACs per image.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from .statistics import Interval

# Per variant: {epoch: [value per seed]} for one metric.
Curves = dict[str, dict[int, list[float]]]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(variants: list[str]) -> dict[str, Any]:
    """One colour per variant: tab20's ten dark colours first, then its light ones (up to 20 distinct)."""
    palette = _pyplot().get_cmap("tab20").colors
    ordered = list(palette[0::2]) + list(palette[1::2])
    return {v: ordered[i % len(ordered)] for i, v in enumerate(variants)}


def _png(fig: Any) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png")
    _pyplot().close(fig)
    return out.getvalue()


def curves_png(train_error: Curves, val_error: Curves, title: str) -> bytes:
    """Training and validation error per epoch, one line and band per variant."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, sharey=True)
    colours = _colours(list(dict.fromkeys([*train_error, *val_error])))
    for ax, curves, name in ((axes[0], train_error, "training error"), (axes[1], val_error, "validation error")):
        for variant, by_epoch in curves.items():
            epochs = sorted(by_epoch)
            if not epochs:
                continue
            values = [np.asarray(by_epoch[e], dtype=float) for e in epochs]
            mean = np.array([v.mean() for v in values])
            spread = np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in values])
            ax.plot(epochs, mean, color=colours[variant], label=variant, linewidth=1.6)
            ax.fill_between(epochs, mean - spread, mean + spread, color=colours[variant], alpha=0.18, linewidth=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{name} (1 - accuracy)")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
    if any(axes[0].get_lines()) or any(axes[1].get_lines()):
        axes[1].legend(fontsize=8)
    fig.suptitle(f"{title}: mean over seeds, band +- 1 sd", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def summary_png(intervals: dict[str, Interval], macs: dict[str, float | None], metric: str, baseline: str, title: str) -> bytes:
    """The headline metric per variant with its 95% interval, against MACs (log scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    colours = _colours(list(intervals))
    shared: dict[float, list[str]] = {}  # variants of equal MACs, drawn side by side rather than on top of each other
    for variant in intervals:
        shared.setdefault(macs.get(variant) or float("nan"), []).append(variant)
    for variant, interval in intervals.items():
        x = macs.get(variant) or float("nan")
        group = shared[x]
        x *= 1 + 0.03 * (group.index(variant) - (len(group) - 1) / 2)
        ax.errorbar([x], [interval.mean], yerr=[[interval.mean - interval.low], [interval.high - interval.mean]],
                    fmt="s" if variant == baseline else "o", color=colours[variant], capsize=4, markersize=6,
                    label=f"{variant} (baseline)" if variant == baseline else variant)
        ax.annotate(variant, (x, interval.mean), fontsize=7, xytext=(4, 6 if group.index(variant) % 2 else -10),
                    textcoords="offset points")
    if any(macs.get(v) for v in intervals):
        ax.set_xscale("log")
    ax.set_xlabel("MACs per image")
    ax.set_ylabel(f"{metric} (mean, 95% interval over seeds)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if intervals:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no variant has two finished seeds yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _png(fig)
