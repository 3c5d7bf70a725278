"""Lesion study: delete residual blocks from a trained network (Veit et al. 2016).

Veit, Wilber & Belongie, "Residual Networks Behave Like Ensembles of Relatively
Shallow Networks" (NeurIPS 2016), Sec. 4: removing a single block from a trained
ResNet barely changes its test error, and removing several degrades it smoothly,
while removing a layer from a plain (VGG-style) network destroys it. A ResNet
is a collection of many paths of different lengths that do not strongly depend
on each other; a plain net is one path.

Deleting a block here merges a zero branch with its shortcut:
``merge(0, shortcut(x))``, read from the block's own residual structure
(:mod:`resnet_lightning.models.residual`), so the skip connection stays exactly
as Veit et al. keep it, with whatever the block does after the addition (the
ReLU of a post-activation block; on an identity shortcut its input is already a
ReLU output, so that changes nothing). A block whose ``shortcut(x)`` is None
(a plain block) has no skip path: it can be deleted (replaced by the identity)
only where it keeps the shape, so a plain net's stage-transition blocks are never
removed. Blocks without ``branch``/``shortcut``/``merge`` are never deleted, with
one warning naming them. As in the paper, BN statistics are not re-estimated
after a deletion.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..models.residual import block_inputs, residual_blocks, structured_blocks
from .errors import AnalysisInputError
from .progress import Progress


@dataclass
class LesionResult:
    """Accuracies of one network with blocks deleted.

    Attributes:
        label: Name of the network in tables and plots (e.g. ``cifar_resnet56``).
        num_blocks: Blocks in the network.
        removable: Indices of the blocks that can be deleted.
        baseline: Accuracy of the intact network.
        single: ``{block index: accuracy}`` with that one block deleted.
        random: ``{k: [accuracy per trial]}`` with ``k`` random removable blocks deleted.
        chance: Accuracy of guessing (1 / classes).
    """

    label: str
    num_blocks: int
    removable: list[int]
    baseline: float
    single: dict[int, float] = field(default_factory=dict)
    random: dict[int, list[float]] = field(default_factory=dict)
    chance: float = 0.0


def _parents(root: nn.Module) -> dict[int, tuple[nn.Module, str]]:
    return {id(child): (parent, name) for parent in root.modules() for name, child in parent.named_children()}


class ZeroBranch(nn.Module):
    """A deleted block: ``block.merge(0, block.shortcut(x))``, the block with its residual branch gone."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        # Not registered as a submodule: the block stays where it is in the network's
        # module tree (and out of this one's), only its forward is replaced for a while.
        self.__dict__["block"] = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.block.shortcut(x)
        return self.block.merge(torch.zeros_like(shortcut), shortcut)

    def extra_repr(self) -> str:
        return f"deleted {type(self.block).__name__}"


def replacements(network: nn.Module, sample: torch.Tensor) -> dict[int, nn.Module]:
    """For each deletable block (by depth index), the module that replaces it.

    Args:
        network: A network whose blocks :func:`~resnet_lightning.models.residual_blocks` finds.
        sample: One input batch (its shapes decide which plain blocks keep the shape).
    """
    if not residual_blocks(network):
        raise AnalysisInputError(
            f"{type(network).__name__} has no blocks() method, so there are no blocks to delete; "
            f"the lesion study needs a resnet_lightning ResNet (or a model with blocks())"
        )
    blocks = structured_blocks(network, "lesion study")
    inputs = block_inputs(network, [b for _, b in blocks], sample)
    result: dict[int, nn.Module] = {}
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            for (i, block), x in zip(blocks, inputs):
                if x is None:
                    continue
                if block.shortcut(x) is not None:
                    result[i] = ZeroBranch(block)
                elif block(x).shape == x.shape:  # no skip path: the identity, where the shape allows
                    result[i] = nn.Identity()
    finally:
        network.train(was_training)
    return result


@contextmanager
def deleted(network: nn.Module, indices: Iterable[int], replace: dict[int, nn.Module]) -> Iterator[nn.Module]:
    """Temporarily replace the blocks at ``indices`` with their :func:`replacements`."""
    blocks = residual_blocks(network)
    parents = _parents(network)
    swapped = []
    try:
        for i in indices:
            parent, name = parents[id(blocks[i])]
            setattr(parent, name, replace[i])
            swapped.append((parent, name, blocks[i]))
        yield network
    finally:
        for parent, name, block in reversed(swapped):
            setattr(parent, name, block)


@torch.no_grad()
def accuracy(network: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], progress: Progress | None = None) -> float:
    """Top-1 accuracy of ``network`` (eval mode) over ``(images, labels)`` batches; one step of ``progress``."""
    was_training = network.training
    network.eval()
    correct = total = 0
    try:
        for images, labels in batches:
            correct += (network(images).argmax(dim=-1) == labels).sum().item()
            total += labels.numel()
    finally:
        network.train(was_training)
    if progress is not None:
        progress.advance()
    return correct / max(total, 1)


def lesion_study(
    network: nn.Module,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    label: str,
    max_removed: int = 10,
    trials: int = 10,
    seed: int = 0,
    num_classes: int | None = None,
    show_progress: bool = False,
) -> LesionResult:
    """Delete each single block, then ``k`` random blocks for ``k = 1..max_removed``.

    Args:
        network: The trained network (not modified: deletions are undone).
        batches: Evaluation batches ``(images, labels)`` on the network's device.
        label: Name for tables and plots.
        max_removed: Largest number of blocks deleted at once (capped at the removable count).
        trials: Random subsets drawn for each ``k``.
        seed: Seed of the subset draws.
        num_classes: For the chance level (default: the output width of one batch).
        show_progress: Show how many of the evaluations are done (:class:`~.progress.Progress`).
    """
    replace = replacements(network, batches[0][0])
    removable = sorted(replace)
    counts = 1 + len(removable) + min(max_removed, len(removable)) * trials
    progress = Progress(f"lesion {label}", counts, "evaluations") if show_progress else None
    baseline = accuracy(network, batches, progress)
    if num_classes is None:
        with torch.no_grad():
            num_classes = network.eval()(batches[0][0][:1]).shape[-1]
    result = LesionResult(label, len(residual_blocks(network)), removable, baseline, chance=1.0 / num_classes)
    for i in removable:
        with deleted(network, [i], replace):
            result.single[i] = accuracy(network, batches, progress)
    rng = random.Random(seed)
    for k in range(1, min(max_removed, len(removable)) + 1):
        result.random[k] = []
        for _ in range(trials):
            with deleted(network, rng.sample(removable, k), replace):
                result.random[k].append(accuracy(network, batches, progress))
    return result


def plot_lesion(results: Sequence[LesionResult]) -> Any:
    """Two panels: accuracy with each single block deleted; accuracy vs number of random blocks deleted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, (single, multi) = plt.subplots(1, 2, figsize=(12, 4.2))
    for n, r in enumerate(results):
        color = f"C{n}"
        single.plot(list(r.single), list(r.single.values()), marker="o", ms=3, color=color, label=r.label)
        single.axhline(r.baseline, color=color, ls="--", lw=0.8)
        ks = np.array([0, *r.random])
        accs = [[r.baseline], *r.random.values()]
        mean = np.array([np.mean(a) for a in accs])
        std = np.array([np.std(a) for a in accs])
        multi.plot(ks, mean, marker="o", ms=3, color=color, label=r.label)
        multi.fill_between(ks, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=color, alpha=0.2)
    chance = results[0].chance if results else 0.0
    for axes in (single, multi):
        axes.axhline(chance, color="grey", ls=":", lw=0.8, label="chance")
        axes.set_ylabel("test accuracy")
        axes.set_ylim(0, 1.02)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    single.set_xlabel("deleted block (input → output); dashed: intact network")
    single.set_title("deleting one block")
    multi.set_xlabel("number of random blocks deleted")
    multi.set_title("deleting k random blocks (mean ± std over trials)")
    figure.suptitle("Lesion study (Veit et al. 2016)")
    figure.tight_layout()
    return figure


def lesion_rows(results: Sequence[LesionResult]) -> tuple[list[str], list[list[Any]]]:
    """One CSV row per measurement: ``model, deleted, blocks, trial, accuracy``."""
    rows: list[list[Any]] = []
    for r in results:
        rows.append([r.label, 0, "", 0, r.baseline])
        rows += [[r.label, 1, str(i), 0, acc] for i, acc in r.single.items()]
        rows += [[r.label, k, "random", t, acc] for k, accs in r.random.items() for t, acc in enumerate(accs)]
    return ["model", "deleted", "blocks", "trial", "accuracy"], rows
