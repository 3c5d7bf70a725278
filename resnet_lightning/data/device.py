"""Whole datasets held on the training device, batched and augmented there with tensor ops.

For 32x32 images a small ResNet on a GPU outruns a DataLoader: per-sample Python
transforms, collation and host-to-device copies become the bottleneck. The fastest
CIFAR-10 trainers (Page 2018, "How to train your ResNet"; Jordan 2024, airbench)
keep the uint8 dataset on the GPU and augment whole batches there. Three pieces:

* :class:`EpochSampler`: ``DistributedSampler``'s order (a permutation per epoch,
  each rank a strided shard, padded so all ranks run the same number of steps), as
  index tensors, seeded from ``(seed, epoch)`` alone: never from the global RNG, so
  a resumed run and every rank draw the same order.
* :class:`RandomCropFlip`: torchvision's ``RandomCrop(padding=p)`` +
  ``RandomHorizontalFlip()`` for a whole batch: one pad, one gather.
* :class:`DeviceBatches`: the iterable Lightning consumes in place of a DataLoader.
  It has a ``sampler`` whose ``set_epoch`` Lightning calls each epoch, and it saves
  its position in the epoch in checkpoints, so a run resumed mid-epoch continues
  with exactly the batches the interrupted run would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resnet_lightning.data.errors import DataConfigError


class EpochSampler:
    """Which samples this rank sees in each epoch, drawn from ``(seed, epoch)`` only.

    The same order as ``torch.utils.data.DistributedSampler`` (a permutation of
    ``range(num_samples)`` per epoch, or ``range`` itself without shuffling; padded by
    repeating its start to a multiple of ``world_size``; rank ``r`` takes positions
    ``r, r + world_size, ...``), except that the permutation comes from a generator
    seeded with ``(seed, epoch)`` through numpy's ``SeedSequence`` rather than
    ``seed + epoch``, which would repeat orders across seeds.

    Args:
        num_samples: Size of the dataset.
        shuffle: A new permutation each epoch; otherwise the dataset order.
        seed: Shared by all ranks (Lightning's DDP sampler uses ``PL_GLOBAL_SEED``).
        rank: This process's rank.
        world_size: Number of processes.
        pad: Repeat samples so every rank gets ``ceil(num_samples / world_size)``, as
            ``DistributedSampler`` does for training, validation and testing. Without
            it (prediction, as Lightning's ``UnrepeatedDistributedSampler``) every
            sample is seen exactly once and ranks may differ by one sample.
    """

    def __init__(
        self, num_samples: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1, pad: bool = True
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}, world_size={world_size}: need world_size >= 1 and 0 <= rank < world_size")
        if num_samples < 0 or seed < 0:
            raise ValueError(f"num_samples={num_samples} and seed={seed} must both be >= 0")
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order (and augmentation) to draw; Lightning calls it each epoch."""
        self.epoch = epoch

    def generator(self, stream: int) -> torch.Generator:
        """A CPU generator for this epoch: 0 draws the order, 1 the augmentation.

        Separate streams keep the augmentation independent of whether the order is shuffled.
        """
        state = np.random.SeedSequence([self.seed, self.epoch, stream]).generate_state(2, np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    @property
    def total_size(self) -> int:
        """Length of the epoch's global order, padding included; ranks split it."""
        return len(self) * self.world_size if self.pad else self.num_samples

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.num_samples / self.world_size)
        return len(range(self.rank, self.num_samples, self.world_size))

    def order(self) -> Tensor:
        """The epoch's global order, ``(total_size,)`` int64, the same on every rank."""
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=self.generator(0))
        else:
            order = torch.arange(self.num_samples)
        if self.total_size > self.num_samples > 0:
            order = order.repeat(math.ceil(self.total_size / self.num_samples))[: self.total_size]
        return order

    def positions(self) -> Tensor:
        """This rank's positions in :meth:`order`: ``rank, rank + world_size, ...``."""
        return torch.arange(self.rank, self.total_size, self.world_size)

    def indices(self) -> Tensor:
        """This rank's samples for the epoch, in order: ``order()[positions()]``."""
        return self.order()[self.positions()]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())


class BatchAugment(Protocol):
    """A random augmentation of whole batches whose draws are made in advance.

    ``draw`` runs on the CPU with the epoch's generator, one row per sample of the
    epoch, so that the result depends on ``(seed, epoch, position)`` only: the same
    on every device, on every rank and after a resume.
    """

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, k)`` int64 parameters, one row per sample."""
        ...

    def __call__(self, images: Tensor, params: Tensor) -> Tensor:
        """Augment ``(B, C, H, W)`` images with their ``(B, k)`` parameters (on the images' device)."""
        ...


class RandomCropFlip:
    """``RandomCrop(size=(H, W), padding=padding)`` then ``RandomHorizontalFlip()``, for a whole batch.

    He et al. 2015 (Sec. 4.2) augment CIFAR this way: pad 4 pixels on each side, crop
    the original size at random, flip half the images. The batch is padded once and
    every crop (flipped or not) is read in one ``gather`` with per-sample indices; no
    loop over samples. Works on any dtype, so it runs on the raw uint8 pixels before
    normalisation, where zero padding means what it means for torchvision's
    per-sample transform: black pixels.

    Args:
        padding: Pixels added on each side; crops move by up to this much.
        padding_mode: ``"constant"`` (zeros, torchvision's default) or ``"reflect"``
            (airbench's choice; the edge pixel is not repeated, as in ``F.pad``).
        flip: Also flip horizontally with probability 1/2.
    """

    def __init__(self, padding: int, padding_mode: Literal["constant", "reflect"] = "constant", flip: bool = True) -> None:
        if padding < 0 or padding_mode not in ("constant", "reflect"):
            raise ValueError(
                f"padding={padding}, padding_mode={padding_mode!r}: need padding >= 0 and a mode of 'constant' or 'reflect'"
            )
        self.padding, self.padding_mode, self.flip = padding, padding_mode, flip

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, 3)`` int64: top and left of the crop in the padded image (0..2p), and flip (0 or 1)."""
        corners = torch.randint(2 * self.padding + 1, (n, 2), generator=generator)
        flips = torch.randint(2, (n, 1), generator=generator) if self.flip else torch.zeros(n, 1, dtype=torch.int64)
        return torch.cat([corners, flips], dim=1)

    def _pad(self, images: Tensor) -> Tensor:
        p = self.padding
        if self.padding_mode == "constant":
            return F.pad(images, (p, p, p, p))
        # Reflection as an index lookup, the same as F.pad(mode="reflect") but for every
        # dtype on every backend (its kernels are written for floating point).
        height, width = images.shape[-2:]
        if p >= min(height, width):
            raise ValueError(f"reflect padding={p} needs images larger than {p}x{p}, got {height}x{width}")
        rows, cols = (torch.arange(-p, n + p, device=images.device) for n in (height, width))
        rows, cols = (n - 1 - (n - 1 - i.abs()).abs() for i, n in ((rows, height), (cols, width)))
        return images.index_select(-2, rows).index_select(-1, cols)

    def __call__(self, images: Tensor, params: Tensor) -> Tensor:
        batch, channels, height, width = images.shape
        padded = self._pad(images)  # (B, C, H + 2p, W + 2p)
        padded_width = padded.shape[-1]
        i = torch.arange(height, device=images.device)
        j = torch.arange(width, device=images.device)
        rows = params[:, 0:1] + i  # (B, H)
        # A flipped crop reads its window right to left: column j comes from left + W-1-j.
        cols = params[:, 1:2] + torch.where(params[:, 2:3].bool(), width - 1 - j, j)  # (B, W)
        flat = (rows[:, :, None] * padded_width + cols[:, None, :]).view(batch, 1, height * width)
        crops = padded.flatten(2).gather(2, flat.expand(batch, channels, height * width))
        return crops.view(batch, channels, height, width)


class DeviceBatches:
    """``(images, labels)`` batches from tensors that already live on the training device.

    Used by Lightning like a DataLoader: it has ``__len__``, ``__iter__``, a
    ``sampler`` with ``set_epoch``, and ``state_dict`` / ``load_state_dict``, which
    Lightning saves in checkpoints for stateful loaders. The batches are not copied
    anywhere: Lightning's transfer to the device is a no-op. Each epoch draws its
    order and augmentation on the CPU (a few bytes per sample) and moves them over
    once; each batch is then one index, one augmentation and one normalisation on the
    device. The last batch may be smaller (no ``drop_last``), as with the DataLoaders.

    Args:
        images: ``(N, C, H, W)``, any dtype, on the device the batches should be on.
        labels: ``(N,)`` int64, on the same device.
        batch_size: Samples per batch.
        sampler: The order of each epoch.
        augment: Applied to each batch before ``transform``, with its own draws; None for none.
        transform: Applied to each batch last, e.g. ``ToDtype(float32, scale=True)`` +
            ``Normalize``; None returns the images as stored.
    """

    # Lightning reads ``loader.batch_sampler`` wherever a loader has a ``sampler``
    # (to ask whether it shuffles, and to call set_epoch); there is none here.
    batch_sampler = None

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        sampler: EpochSampler,
        augment: BatchAugment | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if len(images) != len(labels) or len(images) != sampler.num_samples:
            raise ValueError(
                f"{len(images)} images, {len(labels)} labels and a sampler over {sampler.num_samples} samples: "
                "all three must be the same"
            )
        self.images, self.labels = images, labels
        self.batch_size, self.sampler = batch_size, sampler
        self.augment, self.transform = augment, transform
        self._state = {"epoch": sampler.epoch, "batches": 0, "batch_size": batch_size}
        self._resume: dict[str, int] | None = None

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # A generator: nothing below runs until the first next(). A resumed fit creates
        # its iterator before it calls set_epoch, so the epoch must be read here, late.
        epoch, device = self.sampler.epoch, self.images.device
        positions = self.sampler.positions()
        indices = self.sampler.indices().to(device)
        params = None
        if self.augment is not None:
            # Drawn for the whole global order and then sharded, so that a sample's
            # augmentation depends on its position only, not on rank or world size.
            params = self.augment.draw(self.sampler.total_size, self.sampler.generator(1))[positions].to(device)
        for batch in range(self._start(epoch), len(self)):
            window = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            images = self.images[indices[window]]  # (B, C, H, W)
            if params is not None:
                images = self.augment(images, params[window])
            if self.transform is not None:
                images = self.transform(images)
            self._state = {"epoch": epoch, "batches": batch + 1, "batch_size": self.batch_size}
            yield images, self.labels[indices[window]]

    def _start(self, epoch: int) -> int:
        resume, self._resume = self._resume, None
        return resume_batch(resume, epoch, len(self), self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        """Where the latest iterator is: its epoch and how many batches it has given out."""
        return dict(self._state)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next iterator of the same epoch skip the batches already given out."""
        self._resume = dict(state_dict)


def resume_batch(resume: dict[str, int] | None, epoch: int, batches: int, batch_size: int) -> int:
    """The batch of ``epoch`` to start from: 0, or where a checkpoint saved in that epoch left off.

    Args:
        resume: A loader's saved position, ``{"epoch", "batches", "batch_size"}``, or None.
        epoch: The epoch about to start (read when its first batch is asked for: Lightning
            creates a resumed fit's iterator before it calls ``set_epoch``).
        batches: Batches in a whole epoch.
        batch_size: Samples per batch now.
    """
    if resume is None or resume["epoch"] != epoch or resume["batches"] >= batches:
        return 0  # a new epoch, or the checkpoint's epoch had ended
    if resume["batch_size"] != batch_size:
        raise DataConfigError(
            f"the checkpoint was saved after batch {resume['batches']} of epoch {epoch} with "
            f"batch_size={resume['batch_size']}, but batch_size is now {batch_size}, so the rest of that "
            f"epoch is not defined; resume with --data.batch_size {resume['batch_size']}, or from a checkpoint "
            "saved at the end of an epoch"
        )
    return resume["batches"]
