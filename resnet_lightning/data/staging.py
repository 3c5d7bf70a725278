"""Write a dataset folder somewhere private, then rename it into place in one step.

torchvision downloads and extracts straight into its destination, so a download that
is interrupted (Ctrl-C, a killed job, a full disk) leaves a folder that has the right
name but not all of its content, and the next run may take it for a finished dataset.
Building under a scratch name in the same directory and finishing with one rename
(:func:`resnet_lightning.storage.atomic_path`, atomic on one filesystem) means the real
name only ever appears complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from resnet_lightning.storage import atomic_path


def stage_into_place(target: str | os.PathLike[str], build: Callable[[Path], object]) -> Path:
    """Build ``target`` in a scratch directory beside it, then rename it into place.

    Args:
        target: The file or folder to create, e.g. ``data/MNIST``. Its parent is
            created if needed and must be on the same filesystem as the scratch
            directory, which it is, since the scratch directory is made inside it.
        build: Called with an empty scratch directory; it must leave the finished
            result at ``scratch / target.name``. Anything else it writes there is
            discarded (a downloaded archive, for instance).

    Returns:
        The path of the finished ``target``.

    Raises:
        FileNotFoundError: ``build`` returned without producing ``scratch / target.name``.
        Exception: Whatever ``build`` raised; the scratch directory is removed and
            ``target`` is left as it was.
    """
    target = Path(target)
    # Another process (a second node on a shared disk) may finish first: its copy is complete
    # by the same argument, so it is kept (keep_existing_dir). A hidden, unmistakable scratch
    # name: if the process is killed outright (SIGKILL), that is what stays behind, and
    # nothing will take it for the dataset.
    with atomic_path(target, workspace=True, keep_existing_dir=True) as result:
        scratch = result.parent
        build(scratch)
        if not result.exists():
            raise FileNotFoundError(
                f"staging {target} produced no {target.name!r} in {scratch}; "
                f"found only {sorted(p.name for p in scratch.iterdir())}"
            )
    return target
