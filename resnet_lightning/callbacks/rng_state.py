"""Keep the random number generators' states in checkpoints, so a resumed run
draws the same shuffles, augmentations and stochastic-depth masks as one that
was never interrupted."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from typing_extensions import override


class RNGStateCheckpoint(L.Callback):
    """Save the Python, NumPy, torch (and CUDA) RNG states with each checkpoint.

    Lightning restores model, optimizer and loop state but not the global RNGs.
    The states are applied as soon as Lightning restores the callback, before
    anything draws from them. The training data draws nothing from them (its order
    and augmentation come from the seed and the epoch: ``data/resumable.py``,
    ``data/device.py``), so what they drive is the model's own randomness (dropout,
    stochastic depth). The sanity-check validation runs inside Lightning's
    ``isolate_rng`` and consumes nothing.
    """

    @override
    def state_dict(self) -> dict[str, Any]:
        states = _collect_rng_states(include_cuda=True)
        # NumPy's state holds an ndarray, which torch.load(weights_only=True) refuses:
        # keep its keys as a tensor so checkpoints stay loadable the safe way.
        name, keys, *rest = states.pop("numpy", (None, None))
        if name is not None:
            states["numpy"] = (name, torch.from_numpy(keys.astype(np.int64)), *rest)
        return {"rng_states": states}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = dict(state_dict.get("rng_states") or {})
        if "numpy" in states:
            name, keys, *rest = states["numpy"]
            states["numpy"] = (name, keys.numpy().astype(np.uint32), *rest)
        if states:
            _set_rng_states(states)
