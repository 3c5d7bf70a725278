"""What a network is, in numbers a run table can sort by: size, cost, depth, provenance."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models import count_macs, count_parameters
from ..models.residual import block_inputs, find_network, residual_blocks, structured_blocks
from ..registry import list_plugins


@torch.no_grad()
def weighted_depth(network: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Convolution and linear layers outside shortcuts: the "depth" of He et al. 2015.

    ResNet-20 has 19 convolutions on its main path and one linear layer: 20.
    A layer is a shortcut's when the block's ``shortcut(x)`` runs it and its
    ``branch(x)`` does not (projection shortcuts); layers both use (the gate of a
    highway block) count. Blocks without ``branch``/``shortcut``/``merge`` are
    counted whole, with a warning naming them.

    Args:
        network: The network.
        input_shape: One sample's shape ``(C, H, W)``; one zero image is run through it.
    """
    weighted = (nn.Conv2d, nn.Linear)
    blocks = structured_blocks(network, "weighted depth")
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else None
    inputs = block_inputs(network, [b for _, b in blocks], torch.zeros(1, *input_shape, device=device)) if blocks else []
    shortcut_only: set[int] = set()
    was_training = network.training
    network.eval()
    try:
        for (_, block), x in zip(blocks, inputs):
            if x is None:
                continue
            used: dict[str, set[int]] = {"branch": set(), "shortcut": set()}
            current = ["branch"]
            handles = [
                m.register_forward_hook(lambda module, inp, out: used[current[0]].add(id(module)))
                for m in block.modules() if isinstance(m, weighted)
            ]
            try:
                block.branch(x)
                current[0] = "shortcut"
                block.shortcut(x)
            finally:
                for handle in handles:
                    handle.remove()
            shortcut_only |= used["shortcut"] - used["branch"]
    finally:
        network.train(was_training)
    return sum(1 for m in network.modules() if isinstance(m, weighted) and id(m) not in shortcut_only)


def plugin_origin(kind: str, name: str | None) -> str | None:
    """``"distribution version"`` of the plugin registered as ``name``, if any."""
    if not name:
        return None
    for spec in list_plugins(kind):  # type: ignore[arg-type]
        if spec.name == name or spec.qualified_name == name:
            return f"{spec.distribution} {spec.version}".strip()
    return None


def model_summary(pl_module: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Parameter count, MACs at ``input_shape`` (one sample), depth, block type and plugin origin.

    Args:
        pl_module: The LightningModule (``ResNetClassifier`` or any with a network inside), or a network.
        input_shape: One sample's shape ``(C, H, W)``.
    """
    network = find_network(pl_module) or getattr(pl_module, "model", pl_module)
    hparams: Any = getattr(pl_module, "hparams", {})
    arch = hparams.get("arch")
    block = getattr(network, "block_name", None) or hparams.get("block")
    try:
        macs: int | None = count_macs(network, (1, *input_shape))
    except Exception:  # a compiled or exotic model the FLOP counter cannot trace: no number beats a crash
        macs = None
    return {
        "parameters": count_parameters(network),
        "trainable_parameters": count_parameters(network, trainable_only=True),
        "macs": macs,
        "input_size": list(input_shape),
        "depth": weighted_depth(network, input_shape),
        "num_blocks": len(residual_blocks(network)),
        "arch": arch,
        "block": block,
        "arch_plugin": plugin_origin("architecture", arch),
        "block_plugin": plugin_origin("block", block),
    }
