"""The LightningModule: training logic only; the network comes from the registry."""

from __future__ import annotations

import math
import os
from contextlib import nullcontext
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from typing_extensions import override

from ..callbacks.ema import EMA
from ..callbacks.finetune import BackboneFreeze
from ..callbacks.swa import SWA
from ..callbacks.throughput import TrainingThroughput
from ..checkpoint_io import CheckpointError, read_checkpoint
from ..console import tell
from ..data.augment import BatchMix
from ..factory import create_model
from ..models.pretrained import classifier_head
from ..safe_load import SAFE_GLOBALS
from . import optimization
from .distillation import Distiller, check_distill
from .example_input import data_spec, example_input
from .initial_weights import fetch_initial_weights, load_initial_weights
from .losses import NonFiniteLossError, classification_loss, non_finite_message
from .options import ModelConfigError, check_model_options
from .state_dict_check import state_dict_mismatch

__all__ = ["ModelConfigError", "NonFiniteLossError", "ResNetClassifier"]


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
        loss: ``"ce"`` (cross-entropy) or ``"bce"``: one sigmoid per class, timm's ``BinaryCrossEntropy``
            ("ResNet strikes back", Wightman et al. 2021); label smoothing applies to both.
        bce_target_threshold: With ``bce``, targets above it become 1, the rest 0 (RSB: 0.2).
        swa_lrs: Stochastic weight averaging (Izmailov et al. 2018) through Lightning's
            ``StochasticWeightAveraging`` at this learning rate; None is off.
        swa_epoch_start: The epoch SWA starts at (1-based), or below 1 a fraction of ``max_epochs``.
        distill: Knowledge distillation from a frozen teacher (:mod:`.distillation`), e.g.
            ``{teacher: runs/NAME/version_0, temperature: 4, alpha: 0.5, features: 0}``; None is off.
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
        loss: Literal["ce", "bce"] = "ce",
        bce_target_threshold: float | None = None,
        swa_lrs: float | None = None,
        swa_epoch_start: float = 0.8,
        distill: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_model_options(self.hparams)
        check_distill(distill)
        self.batch_mix = BatchMix(num_classes, mixup_alpha, cutmix_alpha) if mixup_alpha > 0 or cutmix_alpha > 0 else None
        self.model = create_model(
            arch, block=block, num_classes=num_classes, in_channels=in_channels, **(arch_kwargs or {})
        )
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.distiller = Distiller(distill, num_classes, in_channels, self.model) if distill else None
        self.optimizer_factory = optimizer
        self._input_shape: list[int] | None = None  # of the training batches, for exports
        self.scheduler_factory = lr_scheduler
        # A bad optimizer or scheduler option stops here, before any run starts.
        optimization.check_optimization(self.parameter_groups(), optimizer, lr_scheduler, self.hparams, steps=3)

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
        callbacks: list[L.Callback] = [TrainingThroughput()] if self.trainer.state.fn == "fit" else []
        if self.hparams.ema_decay > 0 and self.trainer.state.fn == "fit":
            callbacks.append(EMA(self.hparams.ema_decay, self.hparams.ema_every_n_steps, self.hparams.ema_start_epoch))
        if self.hparams.get("freeze_backbone_epochs", 0) > 0 and self.trainer.state.fn == "fit":
            callbacks.append(BackboneFreeze(self.hparams.freeze_backbone_epochs, self.hparams.backbone_lr_scale))
        if self.hparams.get("swa_lrs") is not None and self.trainer.state.fn == "fit":
            start = self.hparams.swa_epoch_start  # < 1: a fraction of max_epochs; else an epoch (1-based)
            callbacks.append(SWA(self.hparams.swa_lrs, start if start < 1 else int(start)))
        return callbacks

    def _fitting(self) -> bool:
        return self._trainer is not None and self.trainer.state.fn == "fit"

    @override
    def prepare_data(self) -> None:
        # One process per node fetches named weights into torch hub's cache before setup reads them.
        if self.hparams.get("weights") and self._fitting():
            fetch_initial_weights(self.hparams.weights, self.hparams.arch)

    @override
    def setup(self, stage: str) -> None:
        if self._fitting():  # one image's shape, so Lightning's model summary counts real FLOPs, not 0
            self.example_input_array = example_input(self.trainer)
            if self.distiller is not None:  # before the optimizer is built: it trains the feature projection
                self.distiller.load_teacher(self.model)
        # Lightning restores a resumed checkpoint after setup: its weights then replace these.
        if self.hparams.get("weights") and self._fitting():
            try:
                self._weights_note = load_initial_weights(self.model, self.hparams.weights, self.hparams.arch)
            except ModelConfigError as err:  # missing, corrupt, another architecture's: reported at fit start
                self._weights_error = err

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
            tell(note)

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # What an exported model needs to be used: the classes' names and the input's normalisation.
        checkpoint["data_spec"] = data_spec(self._trainer.datamodule if self._trainer is not None else None, self._input_shape)

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._input_shape is None:
            self._input_shape = list(batch[0].shape[1:])  # (C, H, W)
            if self.distiller is not None:
                tell(self.distiller.cost(self.model, self._input_shape))

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning loads the checkpoint's state_dict right after this hook (Trainer and load_from_checkpoint alike).
        self._loading_checkpoint = True
        projection = checkpoint["state_dict"].get("distiller.projection.weight")
        if self.distiller is not None and self.distiller.projection is None and projection is not None:
            self.distiller.ensure_projection(projection.shape[1], projection.shape[0])  # (C_teacher, C_student, 1, 1)
        if "current_model_state" in checkpoint and self._trainer is not None and self.trainer.state.fn != "fit":
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
        return state_dict_mismatch(self.state_dict(), state_dict, self.hparams, path, strict)

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
        distilling = stage == "train" and self.distiller is not None
        with self.distiller.watch(self.model) if distilling else nullcontext():  # type: ignore[union-attr]
            logits = self._evaluate(images) if stage == "test" else self(images)
        loss = classification_loss(logits, targets, self.hparams)  # soft (mixed) targets too
        if distilling:  # the teacher sees the same (mixed) images
            losses = self.distiller(self.model, images, logits, loss)  # type: ignore[misc]
            loss = losses.pop("loss")
            self.log_dict({f"train/{name}": value for name, value in losses.items()}, on_step=True, on_epoch=True)
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
            raise NonFiniteLossError(non_finite_message(self.trainer, loss, self.global_step, self.current_epoch))
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

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Parameters for the optimizer: norm weights and biases apart if asked, and the
        backbone (everything but the head) apart with ``lr_scale`` if ``backbone_lr_scale`` < 1."""
        return optimization.parameter_groups(self.named_parameters(), f"model.{classifier_head(self.model)}.", self.hparams)

    @override
    def configure_optimizers(self) -> Any:
        trainer = self._trainer
        if self.scheduler_factory is not None and trainer is not None:  # the whole fit's schedule, now that it is known
            interval = self.hparams.lr_scheduler_interval
            steps = trainer.max_epochs if interval == "epoch" else trainer.max_steps
            if steps is not None and steps > 3:
                optimization.check_optimization(
                    self.parameter_groups(), self.optimizer_factory, self.scheduler_factory, self.hparams, steps
                )
        optimizer = optimization.build_optimizer(self.parameter_groups(), self.optimizer_factory, self.hparams)
        return optimization.lr_schedule(optimizer, self.scheduler_factory, self.hparams)

