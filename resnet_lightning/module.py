"""The LightningModule: training logic only; the network comes from the registry."""

from __future__ import annotations

import math
import os
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from typing_extensions import override

from .callbacks.ema import EMA
from .callbacks.finetune import BackboneFreeze
from .checkpoint_io import CheckpointError, read_checkpoint
from .data.augment import BatchMix
from .factory import create_model
from .models.pretrained import WeightsError, check_weights, classifier_head, is_weights_file, load_pretrained, resolve_weights
from .registry import get_architecture
from .safe_load import SAFE_GLOBALS


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class ModelConfigError(ValueError):
    """A model option has a value it cannot take; the message names it and the fix."""


class ResNetClassifier(L.LightningModule):
    """Image classification with any registered architecture and block.

    The network is built by name through the plugin registry, so an outside
    plugin's architecture or block trains with no change here. Every ``__init__``
    argument is saved as a hyperparameter: ``ResNetClassifier.load_from_checkpoint(path)``
    rebuilds the model, plugin included, with no other arguments.

    Args:
        arch: Architecture name (``resnet-lightning plugins`` lists them).
        block: Block name, or None for the architecture's default.
        num_classes: Output classes (linked from the DataModule by the CLI).
        in_channels: Input image channels (linked from the DataModule by the CLI).
        arch_kwargs: Extra architecture options, e.g. ``{"depth": 56, "shortcut": "B"}``.
        optimizer: Optimizer factory; None is the paper's SGD (lr 0.1, momentum 0.9,
            weight decay 1e-4; He et al. 2015).
        lr_scheduler: LR scheduler factory (e.g. ``MultiStepLR``, ``CosineAnnealingLR``);
            None keeps the learning rate constant after warm-up.
        lr_scheduler_interval: Whether the scheduler steps every ``"epoch"`` or every
            optimizer ``"step"`` (the paper's milestones are in iterations).
        warmup: Linear warm-up length, in ``lr_scheduler_interval`` units, from 1% of
            the learning rate (He et al. 2015 warm ResNet-110 up at lr 0.01). The main
            schedule starts counting when warm-up ends.
        label_smoothing: Label smoothing of the cross-entropy (Szegedy et al. 2016).
        no_weight_decay_on_norm_and_bias: Exclude norm weights and all biases (every
            parameter with fewer than 2 dimensions) from weight decay.
        channels_last: Train in ``torch.channels_last`` memory format (faster convs on GPUs).
        compile: Compile the network with ``torch.compile``; state-dict keys are unchanged.
        mixup_alpha: MixUp (Zhang et al. 2018) on each training batch, mixing weight drawn
            from Beta(alpha, alpha); 0 is off. The loss then takes soft targets; the
            training accuracy is still measured against the hard labels.
        cutmix_alpha: CutMix (Yun et al. 2019) likewise; with both on, each batch gets
            one of the two, chosen at random (torchvision's reference recipe).
        ema_decay: Validate, checkpoint and export an exponential moving average of the
            weights with this decay (e.g. 0.9999); 0 is off. Adds the :class:`EMA`
            callback (Lightning's ``EMAWeightAveraging``) to fits; ``val/acc_raw`` logs
            the raw weights' accuracy beside ``val/acc``.
        ema_every_n_steps: Update the average every n optimizer steps (torchvision: 32).
        ema_start_epoch: Keep the average equal to the weights before this epoch
            (torchvision: the warm-up epochs).
        tta_flip: At test and predict time, average the class probabilities of each
            image and its horizontal mirror (test-time augmentation).
        weights: Start a new fit from pretrained weights: a name the architecture offers
            (``IMAGENET1K_V1``, ``IMAGENET1K_V2``, ``DEFAULT`` for ``resnet18`` .. ``resnet152``,
            torchvision's, downloaded once into torch hub's cache) or a ``.pth`` state dict
            or ``.ckpt`` file. Loaded when a fit starts (fetched in ``prepare_data``, on one
            process per node; a resumed checkpoint's weights then replace them), never by
            ``test``/``predict`` or ``load_from_checkpoint``. A head for another ``num_classes`` starts fresh; a stem for other
            ``in_channels`` is adapted (see ``create_model``).
        freeze_backbone_epochs: Train only the classifier head for this many epochs, then
            everything (:class:`~.callbacks.finetune.BackboneFreeze`, Lightning's ``BaseFinetuning``).
        backbone_lr_scale: The learning rate of everything but the head, as a fraction of
            the head's (e.g. 0.1 when fine-tuning pretrained weights).
    """

    def __init__(
        self,
        arch: str = "cifar_resnet20",
        block: str | None = None,
        num_classes: int = 10,
        in_channels: int = 3,
        arch_kwargs: dict[str, Any] | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["epoch", "step"] = "epoch",
        warmup: int = 0,
        label_smoothing: float = 0.0,
        no_weight_decay_on_norm_and_bias: bool = False,
        channels_last: bool = False,
        compile: bool = False,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        ema_decay: float = 0.0,
        ema_every_n_steps: int = 1,
        ema_start_epoch: int = 0,
        tta_flip: bool = False,
        weights: str | None = None,
        freeze_backbone_epochs: int = 0,
        backbone_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not 0.0 <= label_smoothing < 1.0:
            raise ModelConfigError(
                f"label_smoothing={label_smoothing} is outside [0, 1); use e.g. --model.label_smoothing 0.1 "
                "(0 turns it off)"
            )
        if warmup < 0:
            raise ModelConfigError(f"warmup={warmup} is negative; use 0 (no warm-up) or a positive length")
        # The DataModule decides these (the CLI links them into the model); arch_kwargs must not.
        if clash := sorted({"num_classes", "in_channels", "block", "weights"} & set(arch_kwargs or {})):
            given = ", ".join(f"{key}: {(arch_kwargs or {})[key]!r}" for key in clash)
            raise ModelConfigError(
                f"arch_kwargs sets {given}, which are model options of their own, not architecture options; "
                f"remove them from arch_kwargs and use {' / '.join(f'--model.{key}' for key in clash)} "
                "(num_classes and in_channels come from the DataModule)"
            )
        for name, alpha in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if alpha < 0:
                raise ModelConfigError(
                    f"{name}={alpha} must be >= 0 (0 turns it off; torchvision's recipe uses "
                    f"mixup_alpha 0.2, cutmix_alpha 1.0); e.g. --model.{name} 0.2"
                )
        if not 0.0 <= ema_decay < 1.0 or ema_every_n_steps < 1 or ema_start_epoch < 0:
            raise ModelConfigError(
                f"ema_decay={ema_decay}, ema_every_n_steps={ema_every_n_steps}, ema_start_epoch={ema_start_epoch}: "
                "need 0 <= ema_decay < 1 (0 is off; e.g. --model.ema_decay 0.9999), ema_every_n_steps >= 1 and "
                "ema_start_epoch >= 0"
            )
        if freeze_backbone_epochs < 0 or not 0.0 < backbone_lr_scale <= 1.0:
            raise ModelConfigError(
                f"freeze_backbone_epochs={freeze_backbone_epochs}, backbone_lr_scale={backbone_lr_scale}: need "
                "freeze_backbone_epochs >= 0 (0: no freezing) and 0 < backbone_lr_scale <= 1 (e.g. 0.1)"
            )
        if weights is not None:
            try:
                check_weights(weights, get_architecture(arch), arch)
            except WeightsError as err:
                raise ModelConfigError(f"--model.weights: {err}") from None
        self.batch_mix = BatchMix(num_classes, mixup_alpha, cutmix_alpha) if mixup_alpha > 0 or cutmix_alpha > 0 else None
        self.model = create_model(
            arch, block=block, num_classes=num_classes, in_channels=in_channels, **(arch_kwargs or {})
        )
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer_factory = optimizer
        self._input_shape: list[int] | None = None  # of the training batches, for exports
        self.scheduler_factory = lr_scheduler
        self._check_optimization(steps=3)  # a bad optimizer or scheduler option stops here, before any run starts

        # validate_args=False: torchmetrics' per-update input check runs torch.unique on the
        # labels, a host-device sync every step on a GPU; the DataModules check labels on load.
        metrics = {"acc": MulticlassAccuracy(num_classes, top_k=1, average="micro", validate_args=False)}
        if num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro", validate_args=False)
        metrics = MetricCollection(metrics)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    @classmethod
    @override
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | os.PathLike[str], *args: Any, weights_only: bool | None = None, **kwargs: Any
    ) -> ResNetClassifier:
        """Lightning's ``load_from_checkpoint``, always weights only, after :func:`~resnet_lightning.checkpoint_io.read_checkpoint`'s
        checks of a local file: a checkpoint never runs code, and a damaged one is refused with one line."""
        del weights_only  # never False (see resnet_lightning.safe_load)
        if isinstance(checkpoint_path, (str, os.PathLike)) and os.path.exists(checkpoint_path):
            read_checkpoint(checkpoint_path)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return super().load_from_checkpoint(checkpoint_path, *args, weights_only=True, **kwargs)

    @override
    def configure_model(self) -> None:
        # nn.Module.compile() compiles in place, so parameter names (and with them
        # checkpoints) stay as they are, unlike wrapping in torch.compile(model).
        if self.hparams.compile and not getattr(self, "_compiled", False):
            self.model.compile()
            self._compiled = True

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)  # (N, num_classes) logits

    @override
    def configure_callbacks(self) -> list[L.Callback]:
        # Fits only: test/validate/export read the checkpoint's state_dict, which already holds the average.
        callbacks: list[L.Callback] = []
        if self.hparams.ema_decay > 0 and self.trainer.state.fn == "fit":
            callbacks.append(EMA(self.hparams.ema_decay, self.hparams.ema_every_n_steps, self.hparams.ema_start_epoch))
        if self.hparams.get("freeze_backbone_epochs", 0) > 0 and self.trainer.state.fn == "fit":
            callbacks.append(BackboneFreeze(self.hparams.freeze_backbone_epochs, self.hparams.backbone_lr_scale))
        return callbacks

    def _fitting(self) -> bool:
        return self._trainer is not None and self.trainer.state.fn == "fit"

    @override
    def prepare_data(self) -> None:
        # One process per node fetches named weights into torch hub's cache before setup reads them.
        weights = self.hparams.get("weights")
        if weights and self._fitting() and not is_weights_file(weights):
            try:
                resolve_weights(weights, get_architecture(self.hparams.arch), self.hparams.arch)
            except WeightsError:
                pass  # setup fails the same way, and says so unless a resumed checkpoint makes them unneeded

    @override
    def setup(self, stage: str) -> None:
        weights = self.hparams.get("weights")
        # Lightning restores a resumed checkpoint after setup: its weights then replace these.
        if weights and self._fitting():
            try:
                outcome = load_pretrained(self.model, weights, builder=get_architecture(self.hparams.arch), arch=self.hparams.arch)
            except WeightsError as err:  # missing, corrupt, another architecture's: reported at fit start
                self._weights_error = ModelConfigError(f"--model.weights: {err}")
                return
            notes = [f"{', '.join(keys)} {what}" for what, keys in outcome.items() if keys]
            self._weights_note = f"fit: initialised from weights {weights}" + (f" ({'; '.join(notes)})" if notes else "")

    @override
    def on_fit_start(self) -> None:
        # Here, once Lightning has restored any checkpoint: a resumed fit continues from its own weights,
        # and does not need the initial ones any more (their file may be gone, the network unreachable).
        note, self._weights_note = getattr(self, "_weights_note", None), None
        error, self._weights_error = getattr(self, "_weights_error", None), None
        if self.trainer.ckpt_path is not None:
            return
        if error is not None:
            raise error
        if note is not None:
            from .run_config import tell  # late: run_config imports the CLI's pieces

            tell(note)

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # What an exported model needs to be used: the classes' names and the input's normalisation.
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        spec = {key: getattr(datamodule, key, None) for key in ("class_names", "mean", "std", "image_size")}
        spec["input_shape"] = self._input_shape
        checkpoint["data_spec"] = {key: _plain(value) for key, value in spec.items()}

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._input_shape is None:
            self._input_shape = list(batch[0].shape[1:])  # (C, H, W)

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning loads the checkpoint's state_dict right after this hook (Trainer and load_from_checkpoint alike).
        self._loading_checkpoint = True
        if "current_model_state" in checkpoint and self._trainer is not None and self.trainer.state.fn != "fit":
            from .run_config import tell  # late: run_config imports the CLI's pieces

            tell(f"{self.trainer.state.fn.value}: evaluating the checkpoint's EMA (averaged) weights, not the raw ones")

    @override
    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        loading_checkpoint, self._loading_checkpoint = getattr(self, "_loading_checkpoint", False), False
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as err:
            path = getattr(self._trainer, "ckpt_path", None) if self._trainer is not None else None
            problem = self.checkpoint_mismatch(state_dict, path, strict) if loading_checkpoint else None
            if problem is None:
                raise
            raise problem from err

    def checkpoint_mismatch(self, state_dict: dict[str, Any], path: Any = None, strict: bool = True) -> CheckpointError | None:
        """The error naming the tensors missing from ``state_dict``, unexpected in it, or of another shape; None if it fits.

        Args:
            state_dict: A checkpoint's ``state_dict``.
            path: The checkpoint file, for the message.
            strict: Whether missing and unexpected tensors count (shapes always do).
        """
        problems = _state_dict_mismatch(self.state_dict(), state_dict, strict)
        if not problems:
            return None
        kwargs = self.hparams.get("arch_kwargs") or {}
        network = f"arch {self.hparams.arch!r}" + (f", block {self.hparams.block!r}" if self.hparams.get("block") else "")
        network += f", arch_kwargs {kwargs}" if kwargs else ""
        return CheckpointError(
            f"checkpoint {path or ''} does not fit this network ({network}): {'; '.join(problems)}. It was saved by "
            "another version of the network (other code or options), or altered since; load it with the code and "
            "options that saved it, or train anew"
        )

    def _evaluate(self, images: torch.Tensor) -> torch.Tensor:
        """Logits, or with ``tta_flip`` the log of the mean probability over the image and its mirror."""
        if not self.hparams.tta_flip:
            return self(images)
        both = self(torch.cat([images, images.flip(-1)]))  # (2N, K): one forward pass for both views
        return both.log_softmax(-1).view(2, len(images), -1).logsumexp(0) - math.log(2)  # log(mean of probs)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, batch_idx: int = 0) -> torch.Tensor:
        images, labels = batch  # (N, C, H, W), (N,)
        targets = labels
        if stage == "train" and self.batch_mix is not None:
            # Seeded by the batch's place in the run, never by the global generator: a resumed fit mixes the same.
            key = (int(os.environ.get("PL_GLOBAL_SEED", 0)), self.current_epoch, batch_idx, self.global_rank)
            images, targets = self.batch_mix(images, labels, key)  # targets: (N, K), rows sum to 1
        logits = self._evaluate(images) if stage == "test" else self(images)
        # Soft targets go through the same cross-entropy (with probabilities), label smoothing included.
        loss = F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(logits.detach(), labels)
        # Step-level loss for the progress bar; epoch-level, synced metrics for the rest.
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=stage == "train", on_epoch=True, sync_dist=stage != "train")
        # Lightning keeps a reference to a logged Metric, computes it at the end of the
        # epoch and resets it: logging it once per epoch, at its first update since a
        # reset, logs the same values. Logging it every step only repeated Lightning's
        # bookkeeping (about 0.5 ms of Python per self.log call on a slow CPU core), a
        # fifth of the framework's fixed cost per step (benchmarks/README.md, benchmark 1).
        if next(iter(metrics.values(copy_state=False))).update_count == 1:
            self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    @override
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._shared_step(batch, "train", batch_idx)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(self._non_finite_message(loss))
        return loss

    @override
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    @override
    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    @override
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self._evaluate(images).softmax(dim=-1)  # (N, num_classes) class probabilities

    def _non_finite_message(self, loss: torch.Tensor) -> str:
        lrs = [group["lr"] for group in self.trainer.optimizers[0].param_groups] if self.trainer.optimizers else []
        precision = self.trainer.precision
        hint = f"the learning rate is too high (lr={max(lrs):g}; lower it or add --model.warmup)" if lrs else "the learning rate is too high"
        if precision in ("16-mixed", "16-true", "16"):
            hint += f", or float16 overflowed (precision={precision}; try bf16-mixed or 32-true)"
        return (
            f"training loss became {loss.item()} at global step {self.global_step} "
            f"(epoch {self.current_epoch}); the likely cause is that {hint}. The run was "
            f"stopped before this step's update; the last checkpoint written before it is kept."
        )

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Parameters for the optimizer: norm weights and biases apart if asked, and the
        backbone (everything but the head) apart with ``lr_scale`` if ``backbone_lr_scale`` < 1."""
        scale = self.hparams.get("backbone_lr_scale", 1.0)
        head = f"model.{classifier_head(self.model)}."
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if p.requires_grad:
                no_decay = self.hparams.no_weight_decay_on_norm_and_bias and p.ndim <= 1
                groups.setdefault((scale < 1.0 and not name.startswith(head), no_decay), []).append(p)
        result = []
        for (backbone, no_decay), params in groups.items():
            group: dict[str, Any] = {"params": params}
            if no_decay:
                group["weight_decay"] = 0.0
            if backbone:
                group["lr_scale"] = scale  # applied to the optimizer's lr in configure_optimizers
            result.append(group)
        return result or [{"params": []}]

    def _new_optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        try:
            if self.optimizer_factory is None:
                optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-4)
            else:
                optimizer = self.optimizer_factory(groups)
        except (ValueError, ArithmeticError) as err:  # torch's own checks: "Invalid learning rate: -1.0"
            option = _option("optimizer", self.hparams.optimizer)
            raise ModelConfigError(
                f"{option}: {err}; fix the value (`resnet-lightning fit --model.optimizer.help {option.split()[1]}`)"
            ) from err
        for group in optimizer.param_groups:  # before the schedulers read their base rates
            group["lr"] *= group.pop("lr_scale", 1.0)
        return optimizer

    def _check_optimization(self, steps: int) -> None:
        """Build the optimizer, and run the scheduler for ``steps`` steps (at most 1000, after any
        warm-up), over throw-away parameters: a bad option (``lr -1``; ``T_max 0``, a division by
        zero at the first step) or a schedule that makes the learning rate negative is a one-line
        error naming the option, before training, instead of a traceback from inside the fit."""
        groups = [{**group, "params": [torch.zeros(1, requires_grad=True)]} for group in self.parameter_groups()]
        probe = self._new_optimizer(groups)
        if self.scheduler_factory is None:
            return
        steps = max(1, min(1000, steps - self.hparams.warmup))
        option = _option("lr_scheduler", self.hparams.lr_scheduler)
        step = 0
        try:
            scheduler = self.scheduler_factory(probe)
            for step in range(1, steps + 1):
                probe.step()  # no gradients: changes nothing, but keeps the scheduler's order check quiet
                scheduler.step(0.0) if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) else scheduler.step()
                lrs = [group["lr"] for group in probe.param_groups]
                if not all(math.isfinite(lr) and lr >= 0 for lr in lrs):
                    raise ModelConfigError(
                        f"{option} makes the learning rate {min(lrs, key=lambda lr: (math.isfinite(lr), lr)):g} at "
                        f"{self.hparams.lr_scheduler_interval} {step}; a learning rate must stay finite and >= 0: "
                        "check the scheduler's options"
                    )
        except (ValueError, ArithmeticError, TypeError, IndexError, KeyError) as err:
            if isinstance(err, ModelConfigError):
                raise
            when = f"at {self.hparams.lr_scheduler_interval} {step}" if step else "when created"
            raise ModelConfigError(
                f"{option} fails {when}: {type(err).__name__}: {err}; check the scheduler's options "
                f"(`resnet-lightning fit --model.lr_scheduler.help {option.split()[1]}`)"
            ) from err

    @override
    def configure_optimizers(self) -> Any:
        trainer = self._trainer
        if self.scheduler_factory is not None and trainer is not None:  # the whole fit's schedule, now that it is known
            interval = self.hparams.lr_scheduler_interval
            steps = trainer.max_epochs if interval == "epoch" else trainer.max_steps
            if steps is not None and steps > 3:
                self._check_optimization(steps)
        optimizer = self._new_optimizer(self.parameter_groups())
        schedulers = []
        if self.hparams.warmup:
            schedulers.append(torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=self.hparams.warmup))
        if self.scheduler_factory is not None:
            schedulers.append(self.scheduler_factory(optimizer))
        if not schedulers:
            return optimizer
        if len(schedulers) == 1:
            scheduler = schedulers[0]
        else:
            scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, schedulers, milestones=[self.hparams.warmup])
        config = {"scheduler": scheduler, "interval": self.hparams.lr_scheduler_interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = getattr(scheduler, "monitor", "val/loss")
        return {"optimizer": optimizer, "lr_scheduler": config}


def _state_dict_mismatch(expected: dict[str, Any], found: dict[str, Any], strict: bool) -> list[str]:
    """What keeps ``found`` from loading into a module whose state dict is ``expected``, in words."""

    def listed(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    problems = []
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    if strict and missing:
        problems.append(f"{len(missing)} tensor(s) missing from the file ({listed(missing)})")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) in the file ({listed(unexpected)})")
    for key, value in found.items():
        want = expected.get(key)
        if isinstance(value, torch.Tensor) and isinstance(want, torch.Tensor) and value.shape != want.shape:
            problems.append(f"{key} is {list(value.shape)} in the file, {list(want.shape)} here")
    return problems


def _option(name: str, value: Any) -> str:
    """"--model.lr_scheduler CosineAnnealingLR (T_max=0)": the option, its class and the arguments that differ from their defaults."""
    if not isinstance(value, dict) or "class_path" not in value:
        return f"--model.{name}" + (" (default)" if value is None else f" {value}")
    class_path = value["class_path"]
    arguments = dict(value.get("init_args") or {})
    try:
        import importlib
        import inspect

        module, _, cls = class_path.rpartition(".")
        parameters = inspect.signature(getattr(importlib.import_module(module), cls)).parameters
        arguments = {k: v for k, v in arguments.items() if k not in parameters or parameters[k].default != v}
    except Exception:  # the defaults only shorten the message
        pass
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return f"--model.{name} {class_path.rpartition('.')[2]}" + (f" ({shown})" if shown else "")


def _plain(value: Any) -> Any:
    """Tensors and tuples as lists, so a checkpoint's ``data_spec`` loads with ``weights_only=True``."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
