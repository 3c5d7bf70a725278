"""Whether a checkpoint's tensors fit a network, and if not, which do not, in words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..checkpoint_io import CheckpointError


def state_dict_mismatch(
    expected: Mapping[str, Any], found: Mapping[str, Any], hparams: Mapping[str, Any], path: Any = None, strict: bool = True
) -> CheckpointError | None:
    """The error naming the tensors missing from ``found``, unexpected in it, or of another shape; None if it fits.

    Args:
        expected: The network's ``state_dict()``.
        found: A checkpoint's ``state_dict``.
        hparams: The module's options (``arch``, ``block``, ``arch_kwargs``), to name the network.
        path: The checkpoint file, for the message.
        strict: Whether missing and unexpected tensors count (shapes always do).
    """
    problems = _mismatch(expected, found, strict)
    if not problems:
        return None
    kwargs = hparams.get("arch_kwargs") or {}
    network = f"arch {hparams['arch']!r}" + (f", block {hparams['block']!r}" if hparams.get("block") else "")
    network += f", arch_kwargs {kwargs}" if kwargs else ""
    return CheckpointError(
        f"checkpoint {path or ''} does not fit this network ({network}): {'; '.join(problems)}. It was saved by "
        "another version of the network (other code or options), or altered since; load it with the code and "
        "options that saved it, or train anew"
    )


def _mismatch(expected: Mapping[str, Any], found: Mapping[str, Any], strict: bool) -> list[str]:
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
