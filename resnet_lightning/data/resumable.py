"""A training DataLoader that a fit stopped mid-epoch resumes at the exact batch.

Lightning saves a training loader's position in checkpoints when the loader has
``state_dict`` / ``load_state_dict``; a plain DataLoader has neither, so a fit
resumed mid-epoch redraws the rest of that epoch with a fresh shuffle. Three pieces
make the rest of the epoch the one the uninterrupted fit would have seen, with any
number of worker processes (and another number after the resume):

* :class:`SeededSampler`: :class:`~resnet_lightning.data.device.EpochSampler`'s order
  (drawn from ``(seed, epoch)`` alone, sharded per DDP rank as Lightning's
  ``DistributedSampler`` shards), each index paired with the seed of that sample's
  augmentation, drawn from ``(seed, epoch)`` for its place in the epoch.
* :class:`SeededDataset`: runs the dataset's ``__getitem__`` (its random transforms)
  with torch's CPU generator seeded with that seed, and restores the generator after.
  An augmentation then depends on ``(seed, epoch, position)`` only, not on which worker
  made it, how many there are, or what a worker drew before (a restarted worker's
  generator would not be where the interrupted one's was).
* :class:`ResumableDataLoader`: counts the batches handed to the training loop (not
  the ones its workers have prefetched) and saves that; loading makes the next
  iterator of the same epoch skip them.

torchdata's ``StatefulDataLoader`` restores the order, but not the workers' random
state (the rest of the epoch is augmented differently) and fails on a resume with
another ``num_workers``; both are what this module is for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from resnet_lightning.data.device import EpochSampler, resume_batch


class SeededSampler(DistributedSampler):
    """``(index, seed)`` pairs in :class:`EpochSampler`'s order; the seed drives that sample's augmentation.

    A ``DistributedSampler`` only so that Lightning, under DDP, keeps it instead of
    wrapping it in its own: it already gives each rank its shard, and it keeps the
    attributes Lightning reads (``num_replicas``, ``rank``, ``shuffle``, ``seed``).

    Args:
        epochs: The order of each epoch, for this rank.
    """

    def __init__(self, epochs: EpochSampler) -> None:  # no super().__init__: it would ask torch.distributed
        self.epochs = epochs
        self.num_replicas, self.rank, self.shuffle, self.seed = epochs.world_size, epochs.rank, epochs.shuffle, epochs.seed
        self.drop_last = False
        self.num_samples, self.total_size = len(epochs), epochs.total_size
        self.start = 0  # samples of the next iteration to skip (a resumed epoch); reset by __iter__

    @property
    def epoch(self) -> int:
        """The epoch whose order the next iteration draws."""
        return self.epochs.epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order (and augmentation seeds) to draw; Lightning calls it each epoch."""
        self.epochs.set_epoch(epoch)

    def seeds(self) -> torch.Tensor:
        """This rank's augmentation seeds for the epoch, one per sample, aligned with ``epochs.indices()``.

        Drawn for the whole global order and then sharded, so a sample's seed depends on
        its position only, not on rank or world size. Stream 2: streams 0 and 1 are the
        order and the on-device augmentation.
        """
        seeds = torch.randint(2**62, (self.epochs.total_size,), generator=self.epochs.generator(2))
        return seeds[self.epochs.positions()]

    def base_seed(self) -> int:
        """A seed for the DataLoader's own generator this epoch (the workers' ``base_seed``), from ``(seed, epoch)``."""
        return int(torch.randint(2**62, (1,), generator=self.epochs.generator(3)))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start, self.start = self.start, 0
        return zip(self.epochs.indices()[start:].tolist(), self.seeds()[start:].tolist())

    def __len__(self) -> int:
        return len(self.epochs)


class SeededDataset(Dataset):
    """``dataset[index]`` made with torch's CPU generator seeded by the sampler's per-sample seed.

    torchvision's transforms draw from that generator. Its state is put back after each
    sample, so with ``num_workers=0`` the training process's own draws (dropout,
    stochastic depth) do not depend on the data. A plain index (a sampler that is not a
    :class:`SeededSampler`, e.g. Lightning's for ``overfit_batches``) reads the sample as is.

    Args:
        dataset: The map-style dataset to read.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        # default_generator (not torch.manual_seed) leaves the CUDA generators alone; saving
        # and restoring its state costs microseconds, NumPy's would cost a hundred.
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            generator.set_state(state)


class ResumableDataLoader(DataLoader):
    """A DataLoader over a :class:`SeededDataset` with a :class:`SeededSampler` that saves its place in the epoch.

    Built like any DataLoader (Lightning can rebuild it). Its ``generator``, which gives
    the workers their ``base_seed``, is reseeded from ``(seed, epoch)`` each epoch, so
    creating an iterator draws nothing from the global generator (a resumed fit creates
    one more than the uninterrupted fit had at that point). ``state_dict`` is
    ``{"epoch", "batches", "batch_size"}``, as for :class:`~resnet_lightning.data.device.DeviceBatches`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.generator is None:
            self.generator = torch.Generator()
        epoch = self.sampler.epoch if isinstance(self.sampler, SeededSampler) else 0
        self._state: dict[str, int] = {"epoch": epoch, "batches": 0, "batch_size": self.batch_size}
        self._resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        if not isinstance(self.sampler, SeededSampler):
            return super().__iter__()  # rebuilt by Lightning with another sampler: an ordinary loader
        return self._batches(self.sampler)

    def _batches(self, sampler: SeededSampler) -> Iterator[Any]:
        # A generator: nothing here runs until the first batch is asked for. A resumed fit
        # creates its iterator before it calls set_epoch, so the epoch is read here, late,
        # and only then do the workers get their first indices.
        epoch, batch_size = sampler.epoch, self.batch_size
        resume, self._resume = self._resume, None
        start = resume_batch(resume, epoch, len(self), batch_size)
        sampler.start = start * batch_size
        self.generator.manual_seed(sampler.base_seed())
        self._state = {"epoch": epoch, "batches": start, "batch_size": batch_size}
        for batches, batch in enumerate(super().__iter__(), start + 1):
            self._state = {"epoch": epoch, "batches": batches, "batch_size": batch_size}
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Where the latest iterator is: its epoch and how many batches it has handed out."""
        return dict(self._state)

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Make the next iterator of the same epoch skip the batches already handed out."""
        self._resume = dict(state_dict) if state_dict else None
        if self._resume:
            self._state = dict(self._resume)
