"""Fine-tuning a pretrained network: the head alone first, then everything, through Lightning's ``BaseFinetuning``."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.optim import Optimizer
from typing_extensions import override

from ..models.pretrained import classifier_head


def backbone_modules(model: nn.Module) -> list[nn.Module]:
    """Every top-level part of ``model`` but its classifier head (``fc``): the pretrained feature extractor."""
    head = classifier_head(model).split(".")[0]
    return [module for name, module in model.named_children() if name != head]


class BackboneFreeze(BaseFinetuning):
    """Train only the classifier head for ``unfreeze_at_epoch`` epochs, then the whole network.

    A new head on a pretrained backbone starts random; training everything at once
    sends its large early gradients into the pretrained features. Training the head
    alone first (the backbone's BatchNorm statistics frozen too) and then unfreezing
    the backbone at ``backbone_lr_scale`` times the head's learning rate is the usual
    remedy (Lightning's ``BackboneFinetuning`` does the same for a ``backbone``
    attribute; ours is "everything but the head" of any architecture). Resuming is
    Lightning's: ``BaseFinetuning`` saves and restores the added parameter group.

    Args:
        unfreeze_at_epoch: First epoch (0-based) that trains the backbone.
        backbone_lr_scale: The backbone's learning rate as a fraction of the head's.
    """

    def __init__(self, unfreeze_at_epoch: int, backbone_lr_scale: float = 1.0) -> None:
        super().__init__()
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.backbone_lr_scale = backbone_lr_scale

    @override
    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        self.freeze(backbone_modules(pl_module.model), train_bn=False)

    @override
    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        if epoch != self.unfreeze_at_epoch:
            return
        base_lr = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"]) * self.backbone_lr_scale
        lr = optimizer.param_groups[0]["lr"] * self.backbone_lr_scale  # where the head's schedule is now, scaled
        groups = len(optimizer.param_groups)
        self.unfreeze_and_add_param_group(backbone_modules(pl_module.model), optimizer, lr=lr, train_bn=True)
        if len(optimizer.param_groups) == groups:
            return
        optimizer.param_groups[-1]["initial_lr"] = base_lr
        # A scheduler made before the group existed keeps per-group lists (base_lrs; LambdaLR's
        # lr_lambdas; ReduceLROnPlateau's min_lrs) that it zips with the groups, which would
        # leave the new group out of the schedule or fail on it: extend each one for it.
        for config in pl_module.trainer.lr_scheduler_configs:
            for scheduler in (config.scheduler, *getattr(config.scheduler, "_schedulers", ())):
                for attribute in ("base_lrs", "lr_lambdas", "min_lrs"):
                    values = getattr(scheduler, attribute, None)
                    if isinstance(values, list) and values and len(values) < len(optimizer.param_groups):
                        values.append(base_lr if attribute == "base_lrs" else values[0])
