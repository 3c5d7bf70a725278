"""Checks of data on disk that say what is wrong and what to do: unreadable paths, labels out of range."""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from resnet_lightning.data.errors import DataError


def check_readable(*paths: Path) -> None:
    """Raise a ``DataError`` naming the first of ``paths`` that exists but this user may not read.

    Without it an unreadable directory looks empty ("not found") and an unreadable
    file looks corrupt, and the fix for either is not to download again.
    """
    for path in paths:
        mode = os.R_OK | os.X_OK if path.is_dir() else os.R_OK
        if os.path.lexists(path) and not os.access(path, mode):
            raise DataError(
                f"{path} is not readable by this user (permission denied); give it read access "
                f"(chmod -R a+rX {path}) or point --data.data_dir at a readable copy"
            )


def check_labels(labels: Tensor, num_classes: int, source: Path) -> None:
    """Raise a ``DataError`` naming ``source`` if a label is outside ``[0, num_classes)``."""
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise DataError(
            f"{source} has label {int(labels[bad][0])} at position {int(bad.nonzero()[0])}, but labels must be "
            f"in 0..{num_classes - 1}; the file is corrupt or belongs to another dataset. "
            "Delete it and download again with --data.download true"
        )
