"""Keep the random number generators' states in checkpoints, so a resumed run
draws the same shuffles, augmentations and stochastic-depth masks as one that
was never interrupted."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from typing_extensions import override


class RNGStateCheckpoint(L.Callback):
    """Save the Python, NumPy, torch (and CUDA) RNG states with each checkpoint.

    Lightning restores model, optimizer and loop state but not the global RNGs.
    The states are applied at ``on_train_start``, after the sanity-check
    validation that a resumed fit runs again (it would otherwise consume random
    numbers the uninterrupted run did not).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"rng_states": _collect_rng_states(include_cuda=True)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng_states")

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            _set_rng_states(self._pending)
            self._pending = None
