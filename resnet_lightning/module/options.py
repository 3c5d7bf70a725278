"""The LightningModule's options, checked before anything is built: one line naming the option and the fix."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from ..errors import UserError
from ..models.pretrained import WeightsError, check_weights
from ..registry import get_architecture

# The DataModule decides these (the CLI links them into the model); arch_kwargs must not.
_NOT_ARCH_KWARGS = {"num_classes", "in_channels", "block", "weights"}


class ModelConfigError(UserError, ValueError):
    """A model option has a value it cannot take; the message names it and the fix."""


def check_model_options(hparams: Mapping[str, Any]) -> None:
    """Refuse a value :class:`~resnet_lightning.module.ResNetClassifier` cannot take, before it builds anything.

    Args:
        hparams: The module's ``__init__`` arguments (its ``hparams``).

    Raises:
        ModelConfigError: Naming the option, its value and the fix.
    """
    label_smoothing, warmup = hparams["label_smoothing"], hparams["warmup"]
    if not 0.0 <= label_smoothing < 1.0:
        raise ModelConfigError(
            f"label_smoothing={label_smoothing} is outside [0, 1); use e.g. --model.label_smoothing 0.1 "
            "(0 turns it off)"
        )
    if warmup < 0:
        raise ModelConfigError(f"warmup={warmup} is negative; use 0 (no warm-up) or a positive length")
    arch_kwargs = hparams["arch_kwargs"] or {}
    if clash := sorted(_NOT_ARCH_KWARGS & set(arch_kwargs)):
        given = ", ".join(f"{key}: {arch_kwargs[key]!r}" for key in clash)
        raise ModelConfigError(
            f"arch_kwargs sets {given}, which are model options of their own, not architecture options; "
            f"remove them from arch_kwargs and use {' / '.join(f'--model.{key}' for key in clash)} "
            "(num_classes and in_channels come from the DataModule)"
        )
    for name in ("mixup_alpha", "cutmix_alpha"):
        if hparams[name] < 0:
            raise ModelConfigError(
                f"{name}={hparams[name]} must be >= 0 (0 turns it off; torchvision's recipe uses "
                f"mixup_alpha 0.2, cutmix_alpha 1.0); e.g. --model.{name} 0.2"
            )
    ema_decay, ema_every_n_steps, ema_start_epoch = hparams["ema_decay"], hparams["ema_every_n_steps"], hparams["ema_start_epoch"]
    if not 0.0 <= ema_decay < 1.0 or ema_every_n_steps < 1 or ema_start_epoch < 0:
        raise ModelConfigError(
            f"ema_decay={ema_decay}, ema_every_n_steps={ema_every_n_steps}, ema_start_epoch={ema_start_epoch}: "
            "need 0 <= ema_decay < 1 (0 is off; e.g. --model.ema_decay 0.9999), ema_every_n_steps >= 1 and "
            "ema_start_epoch >= 0"
        )
    freeze_backbone_epochs, backbone_lr_scale = hparams["freeze_backbone_epochs"], hparams["backbone_lr_scale"]
    if freeze_backbone_epochs < 0 or not 0.0 < backbone_lr_scale <= 1.0:
        raise ModelConfigError(
            f"freeze_backbone_epochs={freeze_backbone_epochs}, backbone_lr_scale={backbone_lr_scale}: need "
            "freeze_backbone_epochs >= 0 (0: no freezing) and 0 < backbone_lr_scale <= 1 (e.g. 0.1)"
        )
    threshold = hparams.get("bce_target_threshold")
    if threshold is not None and (hparams.get("loss", "ce") != "bce" or not 0.0 <= threshold < 1.0):
        raise ModelConfigError(
            f"bce_target_threshold={threshold} with loss={hparams.get('loss', 'ce')!r}: the threshold needs --model.loss bce "
            "and a value in [0, 1) (ResNet strikes back: 0.2)"
        )
    swa_lrs, swa_epoch_start = hparams.get("swa_lrs"), hparams.get("swa_epoch_start", 0.8)
    if swa_lrs is not None and (swa_lrs <= 0 or not (0 < swa_epoch_start < 1 or float(swa_epoch_start).is_integer()) or ema_decay > 0):
        raise ModelConfigError(
            f"swa_lrs={swa_lrs}, swa_epoch_start={swa_epoch_start}, ema_decay={ema_decay}: SWA needs swa_lrs > 0 "
            "(e.g. --model.swa_lrs 0.01), swa_epoch_start an epoch (1, 2, ...) or a fraction of max_epochs in (0, 1) and no EMA "
            "(both average the weights: choose one)"
        )
    if hparams["weights"] is not None:
        try:
            check_weights(hparams["weights"], get_architecture(hparams["arch"]), hparams["arch"])
        except WeightsError as err:
            raise ModelConfigError(f"--model.weights: {err}") from None


def option_text(name: str, value: Any) -> str:
    """"--model.lr_scheduler CosineAnnealingLR (T_max=0)": the option, its class and the arguments that differ from their defaults."""
    if not isinstance(value, dict) or "class_path" not in value:
        return f"--model.{name}" + (" (default)" if value is None else f" {value}")
    class_path = value["class_path"]
    arguments = dict(value.get("init_args") or {})
    try:
        module, _, cls = class_path.rpartition(".")
        parameters = inspect.signature(getattr(importlib.import_module(module), cls)).parameters
        arguments = {k: v for k, v in arguments.items() if k not in parameters or parameters[k].default != v}
    except Exception:  # the defaults only shorten the message
        pass
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return f"--model.{name} {class_path.rpartition('.')[2]}" + (f" ({shown})" if shown else "")
