"""Batch-level augmentation for the LightningModule: MixUp and CutMix from ``torchvision.transforms.v2``.

They mix pairs of images *within a batch* and their labels with them, so they run on
the batch as it reaches the model, on the training device, the same for DataLoader,
``on_device`` and DDP runs. torchvision draws their randomness (the Beta-distributed
mixing weight, the CutMix box, which of the two) from the global CPU generator. Here
every call draws from it seeded with a key naming the batch, ``(seed, epoch, batch,
rank)`` in the LightningModule, the way ``data/device.py`` seeds its crops from
``(seed, epoch)``: a resumed run mixes exactly as the uninterrupted one would,
whatever else consumed the global generator in between.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2


class BatchMix:
    """MixUp (Zhang et al. 2018) and/or CutMix (Yun et al. 2019) on ``(images, labels)`` batches.

    With both on, each batch gets one of the two at random with equal probability, as
    torchvision's reference scripts do (``v2.RandomChoice([MixUp, CutMix])``).

    Args:
        num_classes: Number of classes, for the one-hot targets.
        mixup_alpha: Beta(alpha, alpha) parameter of MixUp's weight; 0 turns MixUp off.
        cutmix_alpha: Beta(alpha, alpha) parameter of CutMix's area; 0 turns CutMix off.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0) -> None:
        ops = []
        if mixup_alpha > 0:
            ops.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            ops.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        if not ops:
            raise ValueError("BatchMix needs mixup_alpha > 0 or cutmix_alpha > 0")
        self.transform = ops[0] if len(ops) == 1 else v2.RandomChoice(ops)

    def __call__(self, images: Tensor, labels: Tensor, key: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Mix a batch: ``(N, C, H, W)`` images and ``(N,)`` labels to images and ``(N, K)`` soft targets summing to 1.

        Args:
            images: The batch.
            labels: Its class indices.
            key: Non-negative integers naming the batch; the same key mixes the same way.
        """
        state = np.random.SeedSequence(list(key)).generate_state(2, np.uint32)
        # fork_rng(devices=[]) saves and restores only the CPU generator, the one torchvision draws from;
        # default_generator.manual_seed (not torch.manual_seed) leaves the CUDA generators alone.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(state[0]) << 32 | int(state[1]))
            images, targets = self.transform(images, labels)
        return images, targets


# --- Augmentation policies as batch operations, for on_device data --------------------------------
#
# torchvision's policies accept a batch (B, C, H, W) but draw once per call: the whole
# batch would get the same operation at the same magnitude, a much weaker augmentation
# than the papers' per-image one. Per-image randomness is kept here by drawing every
# image's operations in advance (vectorised, from the epoch's generator, as BatchAugment
# asks) and then applying torchvision's own operation kernel once per group of images
# that drew the same (operation, magnitude, sign): at most as many calls as distinct
# draws in the batch, each on a sub-batch.


class BatchPolicy:
    """TrivialAugmentWide, RandAugment or AutoAugment with per-image draws, for whole uint8 batches.

    The draws follow the policy's own ``forward`` (the same choices with the same
    probabilities), and each group is transformed by the policy's own
    ``_apply_image_or_video_transform``, so an image gets exactly what the per-image
    transform would have given it for that draw.

    Args:
        policy: A ``v2.TrivialAugmentWide``, ``v2.RandAugment`` or ``v2.AutoAugment``.
    """

    def __init__(self, policy: v2.TrivialAugmentWide | v2.RandAugment | v2.AutoAugment) -> None:
        if not isinstance(policy, (v2.TrivialAugmentWide, v2.RandAugment, v2.AutoAugment)):
            raise TypeError(f"BatchPolicy takes TrivialAugmentWide, RandAugment or AutoAugment, not {type(policy).__name__}")
        self.policy = policy
        self.ops = list(policy._AUGMENTATION_SPACE)  # operation names; an index into this is drawn
        self._signed = torch.tensor([signed for _, signed in policy._AUGMENTATION_SPACE.values()])
        if isinstance(policy, v2.TrivialAugmentWide):
            self.steps, self.num_bins = 1, policy.num_magnitude_bins
        elif isinstance(policy, v2.RandAugment):
            self.steps, self.num_bins = policy.num_ops, policy.num_magnitude_bins
        else:  # AutoAugment: one of its sub-policies, two (operation, probability, magnitude bin) each
            self.steps, self.num_bins = 2, 10
            self._sub = [[(self.ops.index(name), p, m or 0) for name, p, m in sub] for sub in policy._policies]

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, 3 * steps)`` int64: per step, the operation (-1 for none), the magnitude bin and the sign (1: negate)."""
        steps = []
        if isinstance(self.policy, v2.AutoAugment):
            chosen = torch.randint(len(self._sub), (n,), generator=generator)
            for step in range(self.steps):
                op, prob, bins = (torch.tensor([sub[step][k] for sub in self._sub])[chosen] for k in range(3))
                applied = torch.rand(n, generator=generator) <= prob
                steps.append((torch.where(applied, op.long(), -1), bins.long()))
        else:
            for _ in range(self.steps):
                op = torch.randint(len(self.ops), (n,), generator=generator)
                if isinstance(self.policy, v2.TrivialAugmentWide):
                    bins = torch.randint(self.num_bins, (n,), generator=generator)
                else:
                    bins = torch.full((n,), self.policy.magnitude)
                steps.append((op, bins))
        columns = []
        for op, bins in steps:
            negate = (torch.rand(n, generator=generator) <= 0.5) & self._signed[op.clamp(min=0)]
            columns += [op, bins, negate.long()]
        return torch.stack(columns, dim=1)

    def __call__(self, images: Tensor, params: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        images = images.clone()
        for step in range(self.steps):
            draws = params[:, 3 * step : 3 * step + 3]
            unique, group = torch.unique(draws.cpu(), dim=0, return_inverse=True)  # one host sync per step
            group = group.to(images.device)
            for k, (op, bin_, negate) in enumerate(unique.tolist()):
                if op < 0 or self.ops[op] == "Identity":
                    continue
                name = self.ops[op]
                magnitudes_fn, _ = self.policy._AUGMENTATION_SPACE[name]
                magnitudes = magnitudes_fn(self.num_bins, height, width)
                magnitude = 0.0 if magnitudes is None else float(magnitudes[bin_]) * (-1 if negate else 1)
                where = (group == k).nonzero().squeeze(1)
                images[where] = self.policy._apply_image_or_video_transform(
                    images[where], name, magnitude, interpolation=self.policy.interpolation, fill=self.policy._fill
                )
        return images


class BatchRandomErasing:
    """``v2.RandomErasing(p)`` (Zhong et al. 2020) with a rectangle drawn per image, for whole batches.

    Draws as torchvision does (area fraction from ``scale``, log-uniform aspect ratio,
    up to 10 tries for a rectangle that fits, else no erasing). torchvision's recipe
    erases after normalisation with 0, i.e. with the mean colour; on raw uint8 pixels
    (before ``eval_transform`` normalises) the same is ``round(255 * mean)`` per channel.

    Args:
        p: Probability of erasing an image.
        size: ``(H, W)`` of the images.
        fill: Per-channel uint8 value of the erased pixels.
        scale: Range of the erased area, as a fraction of the image.
        ratio: Range of the rectangle's aspect ratio.
    """

    def __init__(
        self, p: float, size: tuple[int, int], fill: Sequence[int], scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
    ) -> None:
        self.p, self.size, self.fill, self.scale, self.ratio = p, size, list(fill), scale, ratio

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, 4)`` int64: top, left, height, width of the rectangle (height 0: no erasing)."""
        height, width = self.size
        tries = 10
        area = height * width * torch.empty(n, tries).uniform_(*self.scale, generator=generator)
        log_ratio = torch.empty(n, tries).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1]), generator=generator)
        h = (area * log_ratio.exp()).sqrt().round().long()
        w = (area / log_ratio.exp()).sqrt().round().long()
        fits = (h < height) & (w < width)
        first = torch.where(fits.any(1), fits.long().argmax(1), 0)  # the first try that fits
        h, w = h.gather(1, first[:, None]).squeeze(1), w.gather(1, first[:, None]).squeeze(1)
        erase = (torch.rand(n, generator=generator) < self.p) & fits.any(1)
        h, w = torch.where(erase, h, 0), torch.where(erase, w, 0)
        top = (torch.rand(n, generator=generator) * (height - h + 1)).long()
        left = (torch.rand(n, generator=generator) * (width - w + 1)).long()
        return torch.stack([top, left, h, w], dim=1)

    def __call__(self, images: Tensor, params: Tensor) -> Tensor:
        rows = torch.arange(images.shape[-2], device=images.device)
        cols = torch.arange(images.shape[-1], device=images.device)
        top, left, h, w = params.unbind(1)
        in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (B, H)
        in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (B, W)
        mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (B, 1, H, W)
        fill = torch.tensor(self.fill, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return torch.where(mask, fill, images)


class BatchCompose:
    """Several batch augmentations in order, their draws side by side in one parameter row.

    Args:
        augments: Objects with ``draw(n, generator)`` and ``__call__(images, params)``.
    """

    def __init__(self, augments: Sequence) -> None:
        self.augments = list(augments)
        self.widths = [augment.draw(1, torch.Generator()).shape[1] for augment in self.augments]

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """The augmentations' draws, concatenated column-wise."""
        return torch.cat([augment.draw(n, generator) for augment in self.augments], dim=1)

    def __call__(self, images: Tensor, params: Tensor) -> Tensor:
        for augment, part in zip(self.augments, params.split(self.widths, dim=1)):
            images = augment(images, part)
        return images
