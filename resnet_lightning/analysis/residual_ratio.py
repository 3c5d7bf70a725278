"""How much each residual branch adds to its shortcut: ``||F(x)|| / ||shortcut(x)||``.

A residual block computes ``shortcut(x) + F(x)``. He et al. (2015, Sec. 4.2 and
Fig. 7) found the responses of residual branches small, so blocks act as small
corrections to the identity; Veit et al. (2016) and Jastrzebski et al. (2018)
read the same ratio as "how far each block moves the representation".

Method: the network, in eval mode and without gradients, runs on a probe batch;
each block's input ``x`` is kept, and the block's own ``branch(x)`` and
``shortcut(x)`` (its residual structure, :mod:`resnet_lightning.models.residual`)
give ``F(x)`` and the shortcut output, whatever the block's layers are called.
The ratio is ``sqrt(sum_n ||F(x_n)||^2 / sum_n ||shortcut(x_n)||^2)`` over the
probe samples: the ratio of root-mean-square norms, which a few samples whose
shortcut is nearly zero cannot blow up (a per-sample mean of ratios can: a
zero-padding shortcut that subsamples a 4x4 map may keep only background
pixels). Blocks whose ``shortcut(x)`` is None (plain blocks) have no ratio; blocks
without ``branch``/``shortcut``/``merge`` are skipped with one warning naming them.
Eval mode means BN uses its running statistics and no state changes; a model
compiled with ``nn.Module.compile()`` is measured eagerly through the same modules.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.residual import block_inputs, structured_blocks


@torch.no_grad()
def residual_ratios(network: nn.Module, images: torch.Tensor, warn: bool = True) -> dict[int, float]:
    """``||branch(x)|| / ||shortcut(x)||`` over the batch (RMS norms) per block index, for blocks with a shortcut.

    Args:
        network: A module whose blocks :func:`~resnet_lightning.models.residual_blocks` finds.
        images: A probe batch ``(N, C, H, W)`` on the network's device.
        warn: Warn about blocks without the residual structure (they are skipped).
    """
    blocks = structured_blocks(network, "residual ratio", warn=warn)
    if not blocks:
        return {}
    inputs = block_inputs(network, [b for _, b in blocks], images)
    ratios = {}
    was_training = network.training
    network.eval()
    try:
        for (i, block), x in zip(blocks, inputs):
            if x is None:
                continue  # not reached by forward
            shortcut = block.shortcut(x)
            if shortcut is None:
                continue  # no skip path (a plain block): no ratio
            branch = block.branch(x).detach().float().pow(2).sum()  # squared norm over the batch
            ratios[i] = (branch / shortcut.detach().float().pow(2).sum().clamp_min(1e-30)).sqrt().item()
    finally:
        network.train(was_training)
    return ratios
