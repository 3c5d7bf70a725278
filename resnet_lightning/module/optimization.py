"""The optimizer and learning-rate schedule of a fit, and the check that they can run at all.

:class:`~resnet_lightning.module.ResNetClassifier` builds them from its options (its
``hparams``): the optimizer over :func:`parameter_groups`, then an optional linear warm-up
followed by the user's scheduler. :func:`check_optimization` runs the schedule over
throw-away parameters first, so a bad option is one line naming it, before training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from .options import ModelConfigError, option_text

OptimizerFactory = Callable[[Any], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


def parameter_groups(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]], head: str, hparams: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Parameters for the optimizer: norm weights and biases apart if asked, and the
    backbone (everything but the head) apart with ``lr_scale`` if ``backbone_lr_scale`` < 1.

    Args:
        named_parameters: The module's ``named_parameters()``.
        head: The prefix of the classifier head's parameters (``"model.fc."``).
        hparams: The module's options (``no_weight_decay_on_norm_and_bias``, ``backbone_lr_scale``).
    """
    scale = hparams.get("backbone_lr_scale", 1.0)
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in named_parameters:
        if p.requires_grad:
            no_decay = hparams["no_weight_decay_on_norm_and_bias"] and p.ndim <= 1
            groups.setdefault((scale < 1.0 and not name.startswith(head), no_decay), []).append(p)
    result = []
    for (backbone, no_decay), params in groups.items():
        group: dict[str, Any] = {"params": params}
        if no_decay:
            group["weight_decay"] = 0.0
        if backbone:
            group["lr_scale"] = scale  # applied to the optimizer's lr in build_optimizer
        result.append(group)
    return result or [{"params": []}]


def build_optimizer(groups: list[dict[str, Any]], factory: OptimizerFactory | None, hparams: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer over ``groups``: ``factory``'s, or the paper's SGD (lr 0.1, momentum 0.9, weight decay 1e-4).

    Raises:
        ModelConfigError: torch refused the optimizer's options (``Invalid learning rate: -1.0``).
    """
    try:
        if factory is None:
            optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-4)
        else:
            optimizer = factory(groups)
    except (ValueError, ArithmeticError) as err:  # torch's own checks: "Invalid learning rate: -1.0"
        option = option_text("optimizer", hparams["optimizer"])
        raise ModelConfigError(
            f"{option}: {err}; fix the value (`resnet-lightning fit --model.optimizer.help {option.split()[1]}`)"
        ) from err
    for group in optimizer.param_groups:  # before the schedulers read their base rates
        group["lr"] *= group.pop("lr_scale", 1.0)
    return optimizer


def check_optimization(
    groups: list[dict[str, Any]],
    optimizer_factory: OptimizerFactory | None,
    scheduler_factory: SchedulerFactory | None,
    hparams: Mapping[str, Any],
    steps: int,
) -> None:
    """Build the optimizer, and run the scheduler for ``steps`` steps (at most 1000, after any
    warm-up), over throw-away parameters: a bad option (``lr -1``; ``T_max 0``, a division by
    zero at the first step) or a schedule that makes the learning rate negative is a one-line
    error naming the option, before training, instead of a traceback from inside the fit.

    Args:
        groups: :func:`parameter_groups` (only their options are used).
        optimizer_factory: The optimizer, or None for the default.
        scheduler_factory: The scheduler, or None (then only the optimizer is built).
        hparams: The module's options (``warmup``, ``lr_scheduler_interval``, and the options' values).
        steps: The schedule's length, in ``lr_scheduler_interval`` units.

    Raises:
        ModelConfigError: Naming the option and what went wrong.
    """
    groups = [{**group, "params": [torch.zeros(1, requires_grad=True)]} for group in groups]
    probe = build_optimizer(groups, optimizer_factory, hparams)
    if scheduler_factory is None:
        return
    steps = max(1, min(1000, steps - hparams["warmup"]))
    option = option_text("lr_scheduler", hparams["lr_scheduler"])
    interval = hparams["lr_scheduler_interval"]
    step = 0
    try:
        scheduler = scheduler_factory(probe)
        for step in range(1, steps + 1):
            probe.step()  # no gradients: changes nothing, but keeps the scheduler's order check quiet
            scheduler.step(0.0) if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) else scheduler.step()
            lrs = [group["lr"] for group in probe.param_groups]
            if not all(math.isfinite(lr) and lr >= 0 for lr in lrs):
                raise ModelConfigError(
                    f"{option} makes the learning rate {min(lrs, key=lambda lr: (math.isfinite(lr), lr)):g} at "
                    f"{interval} {step}; a learning rate must stay finite and >= 0: check the scheduler's options"
                )
    except (ValueError, ArithmeticError, TypeError, IndexError, KeyError) as err:
        if isinstance(err, ModelConfigError):
            raise
        when = f"at {interval} {step}" if step else "when created"
        raise ModelConfigError(
            f"{option} fails {when}: {type(err).__name__}: {err}; check the scheduler's options "
            f"(`resnet-lightning fit --model.lr_scheduler.help {option.split()[1]}`)"
        ) from err


def lr_schedule(optimizer: torch.optim.Optimizer, scheduler_factory: SchedulerFactory | None, hparams: Mapping[str, Any]) -> Any:
    """What ``configure_optimizers`` returns: the optimizer alone, or with its warm-up and scheduler.

    A linear warm-up of ``hparams["warmup"]`` steps from 1% of the learning rate (He et al.
    2015 warm ResNet-110 up at lr 0.01), then the user's scheduler, which starts counting
    when warm-up ends.
    """
    warmup = hparams["warmup"]
    schedulers = []
    if warmup:
        schedulers.append(torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup))
    if scheduler_factory is not None:
        schedulers.append(scheduler_factory(optimizer))
    if not schedulers:
        return optimizer
    if len(schedulers) == 1:
        scheduler = schedulers[0]
    else:
        scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, schedulers, milestones=[warmup])
    config = {"scheduler": scheduler, "interval": hparams["lr_scheduler_interval"]}
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        config["monitor"] = getattr(scheduler, "monitor", "val/loss")
    return {"optimizer": optimizer, "lr_scheduler": config}
