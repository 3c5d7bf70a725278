"""Knowledge distillation (``--model.distill``): a frozen teacher's soft targets train the student.

Logit distillation is Hinton et al. 2015 ("Distilling the Knowledge in a Neural Network"): the
KL divergence between the teacher's and the student's class probabilities at temperature T,
times T^2 (so its gradients keep their size as T changes), weighted against the hard-label
loss: ``(1 - alpha) * hard + alpha * T^2 * KL``. Feature distillation (FitNets, Romero et al.
2015) adds the mean squared error between the teacher's last feature map (the input of its
``avgpool``) and the student's, brought to the teacher's channels by a learned 1x1 convolution.

The teacher is a run directory (its best checkpoint), a ``.ckpt`` file, or a registry
architecture with weights (``{teacher: resnet152, weights: IMAGENET1K_V2}``). It is loaded when a
fit starts, frozen, in eval mode, and kept outside the module's state: not in checkpoints, not
averaged by EMA, not wrapped by DDP; it follows the student's device and dtype. It sees the
images the student sees, MixUp/CutMix included.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import runs
from ..checkpoint_io import CheckpointError, read_checkpoint
from ..errors import UserError, did_you_mean, one_line
from ..factory import create_model
from ..models.flops import count_macs, count_parameters
from .options import ModelConfigError

DEFAULTS: dict[str, Any] = {
    "teacher": None, "weights": None, "block": None, "arch_kwargs": None, "temperature": 4.0, "alpha": 0.5, "features": 0.0,
}


def check_distill(distill: Mapping[str, Any] | None) -> None:
    """Refuse a ``--model.distill`` that cannot work, before anything is built; one line naming the value and the fix."""
    if distill is None:
        return
    if not isinstance(distill, Mapping):
        raise ModelConfigError(f"--model.distill {distill!r} is not a mapping; e.g. --model.distill \"{{teacher: runs/..., temperature: 4}}\"")
    for key in distill:
        if key not in DEFAULTS:
            raise ModelConfigError(one_line(
                f"--model.distill has no option {key!r}", did_you_mean(key, DEFAULTS), f"known: {', '.join(DEFAULTS)}"
            ))
    options = {**DEFAULTS, **distill}
    if not options["teacher"]:
        raise ModelConfigError("--model.distill needs a teacher: a run directory, a .ckpt file or an architecture name "
                               "with weights, e.g. --model.distill \"{teacher: resnet152, weights: IMAGENET1K_V2}\"")
    if not (options["temperature"] > 0 and 0 <= options["alpha"] <= 1 and options["features"] >= 0):
        raise ModelConfigError(
            f"--model.distill temperature={options['temperature']}, alpha={options['alpha']}, features={options['features']}: "
            "need temperature > 0 (Hinton et al.: 1-20, e.g. 4), 0 <= alpha <= 1 (the KD loss's weight) and features >= 0"
        )


class _Shared:
    """Holds the teacher out of the module's state; copies of the module (EMA's average) share it."""

    def __init__(self, network: nn.Module) -> None:
        self.network = network

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


class Distiller(nn.Module):
    """The distillation loss of one student; its only parameters are the feature projection's.

    Args:
        distill: ``--model.distill``'s options (see :data:`DEFAULTS`).
        num_classes: The student's classes; the teacher's must be the same.
        in_channels: The student's input channels.
        student: The student network.
    """

    def __init__(self, distill: Mapping[str, Any], num_classes: int, in_channels: int, student: nn.Module) -> None:
        super().__init__()
        self.options = {**DEFAULTS, **distill}
        self.num_classes, self.in_channels = num_classes, in_channels
        self.projection: nn.Module | None = None
        self._teacher: _Shared | None = None
        if self.options["features"] > 0:  # now, so that copies of the module (EMA's) have it too
            try:  # the teacher's shape only, on the meta device; the teacher itself is loaded when a fit starts
                with torch.device("meta"):
                    width = _width(load_teacher(self.options, in_channels, weights=False)[0], "teacher")
                self.ensure_projection(_width(student, "student"), width)
            except UserError:  # said when the fit loads the teacher; a checkpoint's tensor gives the shape otherwise
                pass

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher.network if self._teacher is not None else None

    def load_teacher(self, student: nn.Module) -> str:
        """Load the teacher (once) and create the projection; the line that says which teacher."""
        if self._teacher is None:
            network, source = load_teacher(self.options, self.in_channels)
            out = _classes(network)
            if out != self.num_classes:
                raise ModelConfigError(
                    f"--model.distill teacher {self.options['teacher']!r} has {out} classes, the student {self.num_classes}; "
                    "distil from a teacher trained on the same classes (the same data)"
                )
            self._teacher = _Shared(network.eval().requires_grad_(False))
            self.source = source
        if self.options["features"] > 0 and self.projection is None:
            self.ensure_projection(_width(student, "student"), _width(self.teacher, "teacher"))
        elif self.projection is not None and self.projection.out_channels != _width(self.teacher, "teacher"):
            raise ModelConfigError(f"--model.distill teacher {self.options['teacher']!r} changed since the fit started "
                                   f"(its feature width is not {self.projection.out_channels}); distil from the original teacher")
        return self.source

    def ensure_projection(self, student_channels: int, teacher_channels: int) -> None:
        """The learned 1x1 projection from the student's last feature map to the teacher's."""
        self.projection = nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False)

    def cost(self, student: nn.Module, image_shape: list[int]) -> str:
        """The teacher's cost per image beside the student's (MACs of one forward pass, parameters)."""
        shape = [1, *image_shape]
        teacher, ours = count_macs(_cpu_copy(self.teacher), shape), count_macs(_cpu_copy(student), shape)
        return (
            f"distill: teacher {self.source}: {teacher / 1e6:.1f}M MACs and {count_parameters(self.teacher) / 1e6:.2f}M "
            f"parameters; the student {ours / 1e6:.1f}M MACs: each training step costs about "
            f"{(ours * 3 + teacher) / (ours * 3):.2f}x the student's alone (forward + backward = 3 forwards)"
        )

    def forward(self, student: nn.Module, images: torch.Tensor, logits: torch.Tensor, hard: torch.Tensor) -> dict[str, torch.Tensor]:
        """The losses of one training batch: ``loss`` (what is optimised), ``kd_loss``, ``hard_loss``, ``feature_loss``.

        ``logits`` are the student's on ``images``; ``hard`` is its loss against the labels.
        """
        teacher = self.teacher
        assert teacher is not None, "load_teacher() first"
        parameter = next(student.parameters())
        teacher.to(device=parameter.device, dtype=parameter.dtype)  # the student's device and precision
        features = self.options["features"] > 0
        with _last_feature_map(teacher, features) as taught, torch.no_grad():
            teacher_logits = teacher(images)  # (N, K)
        t = self.options["temperature"]
        kd = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher_logits.float() / t, -1), log_target=True,
                      reduction="batchmean") * t * t
        alpha = self.options["alpha"]
        losses = {"hard_loss": hard, "kd_loss": kd, "loss": (1 - alpha) * hard + alpha * kd}
        if features:
            student_map = self._student_map  # (N, C_s, H, W), from the hook around the student's forward
            projected = self.projection(student_map)  # type: ignore[misc]
            losses["feature_loss"] = F.mse_loss(projected, taught[0].to(projected.dtype))
            losses["loss"] = losses["loss"] + self.options["features"] * losses["feature_loss"]
        return losses

    def watch(self, student: nn.Module) -> Any:
        """A context in which the student's forward keeps its last feature map for :meth:`forward` (features only)."""
        return _Keep(self, student) if self.options["features"] > 0 else _Nothing()


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


class _Keep:
    def __init__(self, distiller: Distiller, student: nn.Module) -> None:
        self.distiller, self.student = distiller, student

    def __enter__(self) -> None:
        def keep(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            self.distiller._student_map = args[0]
        self.handle = _pool(self.student, "student").register_forward_pre_hook(keep)

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()


class _last_feature_map:
    """Collects the input of ``network.avgpool`` (its last feature map) while active, when ``wanted``."""

    def __init__(self, network: nn.Module, wanted: bool) -> None:
        self.network, self.wanted, self.maps = network, wanted, []

    def __enter__(self) -> list[torch.Tensor]:
        if self.wanted:
            self.handle = _pool(self.network, "teacher").register_forward_pre_hook(lambda m, args: self.maps.append(args[0]))
        return self.maps

    def __exit__(self, *exc: Any) -> None:
        if self.wanted:
            self.handle.remove()


def _pool(network: nn.Module, who: str) -> nn.Module:
    pool = getattr(network, "avgpool", None)
    if not isinstance(pool, nn.Module):
        raise ModelConfigError(
            f"--model.distill features: the {who} ({type(network).__name__}) has no `avgpool` module whose input is its last "
            "feature map; use features: 0 (logit distillation only)"
        )
    return pool


def _width(network: nn.Module, who: str) -> int:
    width = getattr(network, "num_features", None)
    if not isinstance(width, int):
        raise ModelConfigError(f"--model.distill features: the {who} ({type(network).__name__}) does not say its `num_features`; use features: 0")
    return width


def _classes(network: nn.Module) -> int:
    head = getattr(network, "fc", None)
    if isinstance(head, nn.Linear):
        return head.out_features
    return int(getattr(network, "num_classes"))


def _cpu_copy(network: nn.Module) -> nn.Module:
    return copy.deepcopy(network).float().cpu()


def load_teacher(options: Mapping[str, Any], in_channels: int, weights: bool = True) -> tuple[nn.Module, str]:
    """The teacher network and how to name it: from a run directory, a checkpoint file, or the registry with weights.

    ``weights=False`` builds it without loading any (to learn its shape).

    Raises:
        ModelConfigError: The teacher cannot be found or loaded; the message names it and the fix.
    """
    teacher = str(options["teacher"])
    path = Path(teacher).expanduser()
    if path.is_dir():
        return _from_checkpoint(_run_checkpoint(path), weights), teacher
    if path.is_file() or teacher.endswith(".ckpt") or os.sep in teacher:
        return _from_checkpoint(path, weights), teacher
    if not options["weights"]:
        raise ModelConfigError(
            f"--model.distill teacher {teacher!r} is an architecture without weights (a fresh teacher teaches nothing); "
            f"add weights, e.g. --model.distill \"{{teacher: {teacher}, weights: IMAGENET1K_V2}}\", or give a run or a .ckpt file"
        )
    network = create_model(teacher, block=options["block"], in_channels=in_channels, weights=options["weights"] if weights else None,
                           **(options["arch_kwargs"] or {}))
    return network, f"{teacher} ({options['weights']})"


def _run_checkpoint(run_dir: Path) -> Path:
    """A run's best checkpoint (the one its ``last.ckpt`` records), else its ``last.ckpt``."""
    last = runs.checkpoint_dir(run_dir) / runs.LAST_CHECKPOINT
    if not last.is_file():
        raise ModelConfigError(f"--model.distill teacher {str(run_dir)!r} is a directory without {last.relative_to(run_dir)}; "
                               "give a run directory of a finished fit (runs/NAME/version_N) or a .ckpt file")
    state = read_checkpoint(last)
    for key, value in state.get("callbacks", {}).items():
        best = value.get("best_model_path") if isinstance(value, dict) and "Checkpoint" in key else None
        if best and (runs.checkpoint_dir(run_dir) / Path(best).name).is_file():
            return runs.checkpoint_dir(run_dir) / Path(best).name
    return last


def _from_checkpoint(path: Path, weights: bool = True) -> nn.Module:
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError as err:
        raise ModelConfigError(f"--model.distill teacher: {err}") from None
    hp = checkpoint.get("hyper_parameters") or {}
    if "arch" not in hp:
        raise ModelConfigError(f"--model.distill teacher {str(path)!r} is a checkpoint without the model's options (arch); "
                               "give a checkpoint written by `resnet-lightning fit`")
    network = create_model(hp["arch"], block=hp.get("block"), num_classes=hp.get("num_classes"),
                           in_channels=hp.get("in_channels"), **(hp.get("arch_kwargs") or {}))
    if weights:
        network.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")})
    return network
