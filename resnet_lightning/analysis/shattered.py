"""Shattered gradients (Balduzzi et al. 2017): input gradients along a line, feed-forward vs residual.

Balduzzi et al., "The Shattered Gradients Problem: If resnets are the answer,
then what is the question?" (ICML 2017), Sec. 2 and Fig. 1-2: for fully connected
rectifier networks with batch normalization (200 units per layer) at
initialisation, take the gradient of the scalar output with respect to a scalar
input at 256 points evenly spaced on [-2, 2]. In a shallow net the gradient
varies smoothly along the line (brown noise); in a deep feed-forward net it
looks like white noise: its autocorrelation at lag 1 drops to about zero
("shattered"). Skip connections keep gradients correlated: the correlation in
a resnet decays with depth far more slowly (sublinearly rather than exponentially).

Batch normalization uses the statistics of the 256 inputs, as a forward pass in
training mode would, but frozen (running statistics set from that one batch,
then eval mode): each input's gradient is then its own, not coupled to the
others through the batch mean and variance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .progress import Progress


class LineNet(nn.Module):
    """A scalar-to-scalar fully connected rectifier net, pre-activation style.

    ``h = Linear(1, width)(x)``, then ``depth`` layers ``Linear(ReLU(BN(h)))``,
    then ``Linear(width, 1)(ReLU(BN(h)))``. With ``residual`` every two layers
    form a block with a skip connection ``h + layers(h)`` (He et al. 2016), so
    feed-forward and residual nets of one depth have identical parameters.

    Args:
        depth: Hidden layers.
        residual: Add skip connections around every two layers.
        width: Units per layer (200 in the paper).
    """

    def __init__(self, depth: int, residual: bool, width: int = 200) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.residual = residual
        self.inp = nn.Linear(1, width)
        # momentum=None: the running statistics become the exact average over the one batch seen.
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm1d(width, momentum=None), nn.ReLU(), nn.Linear(width, width)) for _ in range(depth)
        )
        self.out = nn.Sequential(nn.BatchNorm1d(width, momentum=None), nn.ReLU(), nn.Linear(width, 1))
        for m in self.modules():
            if isinstance(m, nn.Linear):  # He et al. 2015 initialisation, zero biases
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)  # (N, width)
        if not self.residual:
            for layer in self.layers:
                h = layer(h)
        else:
            for i in range(0, len(self.layers), 2):
                branch = h
                for layer in self.layers[i : i + 2]:  # the last block has one layer when depth is odd
                    branch = layer(branch)
                h = h + branch
        return self.out(h)  # (N, 1)


def input_gradients(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``d net(x_i) / d x_i`` for each of the ``(N, 1)`` inputs, with BN statistics of ``x`` frozen."""
    net.train()
    with torch.no_grad():
        net(x)  # sets the BN running statistics to those of this batch (momentum=None)
    net.eval()
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    return grad.flatten()  # (N,)


def autocorrelation(g: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Sample autocorrelation of a 1-D signal at lags ``0..max_lag``."""
    g = g - g.mean()
    denominator = (g * g).sum().clamp_min(1e-30)
    return torch.stack([(g[: len(g) - lag] * g[lag:]).sum() / denominator for lag in range(max_lag + 1)])


@dataclass
class ShatteredResult:
    """Gradients and their statistics for one network type.

    Attributes:
        label: ``"feed-forward, 24 layers"`` etc.
        depth: Hidden layers.
        residual: Whether it has skip connections.
        gradients: ``(seeds, points)`` input gradients, one row per initialisation.
        autocorrelation: ``(max_lag + 1,)`` mean over seeds.
        correlation: ``(points, points)`` correlation of gradients between inputs, across seeds.
    """

    label: str
    depth: int
    residual: bool
    gradients: torch.Tensor
    autocorrelation: torch.Tensor
    correlation: torch.Tensor

    @property
    def lag1(self) -> float:
        """Mean lag-1 autocorrelation: about 0 for white noise, about 1 for brown noise."""
        return float(self.autocorrelation[1])


def shattered_gradients(
    configs: Sequence[tuple[int, bool]] = ((1, False), (24, False), (24, True)),
    width: int = 200,
    points: int = 256,
    seeds: int = 20,
    max_lag: int = 32,
    seed: int = 0,
    show_progress: bool = False,
) -> list[ShatteredResult]:
    """Input gradients along ``linspace(-2, 2, points)`` for each ``(depth, residual)`` at initialisation.

    Args:
        configs: ``(depth, residual)`` pairs; the default is the paper's shallow
            reference and a feed-forward and a residual net of equal depth.
        width: Units per layer.
        points: Inputs on the line.
        seeds: Random initialisations per configuration.
        max_lag: Largest autocorrelation lag.
        seed: Base seed; initialisation ``s`` uses ``seed + s``.
        show_progress: Show how many of the networks are done (:class:`~.progress.Progress`).
    """
    x = torch.linspace(-2.0, 2.0, points).unsqueeze(1)  # (points, 1)
    results = []
    progress = Progress("shattered", len(configs) * seeds, "networks") if show_progress else None
    for depth, residual in configs:
        grads = []
        for s in range(seeds):
            torch.manual_seed(seed + s)
            grads.append(input_gradients(LineNet(depth, residual, width), x))
            if progress is not None:
                progress.advance()
        g = torch.stack(grads)  # (seeds, points)
        ac = torch.stack([autocorrelation(row, max_lag) for row in g]).mean(dim=0)
        correlation = torch.corrcoef(g.T) if seeds > 1 else torch.eye(points)
        label = f"{'residual' if residual else 'feed-forward'}, {depth} layer{'s' if depth > 1 else ''}"
        results.append(ShatteredResult(label, depth, residual, g, ac, correlation))
    return results


def plot_shattered(results: Sequence[ShatteredResult]) -> Any:
    """Top: one initialisation's gradients along the line; middle: gradient correlation
    between inputs (across initialisations); bottom: autocorrelation against lag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    figure = plt.figure(figsize=(3.4 * n, 8.5))
    grid = figure.add_gridspec(3, n, height_ratios=[1, 1.2, 1])
    x = torch.linspace(-2.0, 2.0, results[0].gradients.shape[1]) if results else None
    for i, r in enumerate(results):
        top = figure.add_subplot(grid[0, i])
        top.plot(x.numpy(), r.gradients[0].numpy(), lw=0.8, color=f"C{i}")
        top.set_title(f"{r.label}\nlag-1 autocorrelation {r.lag1:.2f}", fontsize=10)
        top.set_xlabel("input x")
        if i == 0:
            top.set_ylabel("d output / d x")
        middle = figure.add_subplot(grid[1, i])
        middle.imshow(r.correlation.abs().numpy(), cmap="gray_r", vmin=0, vmax=1, extent=(-2, 2, 2, -2), interpolation="bilinear")
        middle.set_title("|correlation| of gradients at x, x'", fontsize=9)
    bottom = figure.add_subplot(grid[2, :])
    for i, r in enumerate(results):
        bottom.plot(range(len(r.autocorrelation)), r.autocorrelation.numpy(), marker="o", ms=3, color=f"C{i}", label=r.label)
    bottom.axhline(0, color="grey", lw=0.8)
    bottom.set_xlabel(f"lag (steps of {4 / max(1, results[0].gradients.shape[1] - 1):.3f} along the line)")
    bottom.set_ylabel("autocorrelation")
    bottom.set_title(f"gradient autocorrelation (mean over {results[0].gradients.shape[0]} initialisations)")
    bottom.legend()
    bottom.grid(alpha=0.3)
    figure.suptitle("Shattered gradients at initialisation (Balduzzi et al. 2017)")
    figure.tight_layout()
    return figure


def shattered_rows(results: Sequence[ShatteredResult]) -> tuple[list[str], list[list[Any]]]:
    """CSV rows ``network, depth, residual, lag, autocorrelation``."""
    rows = [
        [r.label, r.depth, r.residual, lag, float(v)] for r in results for lag, v in enumerate(r.autocorrelation)
    ]
    return ["network", "depth", "residual", "lag", "autocorrelation"], rows
