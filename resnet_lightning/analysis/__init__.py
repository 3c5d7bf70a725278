"""Analyses of trained and untrained residual networks, reproducing published findings.

* :mod:`.lesion` — delete blocks from a trained network (Veit et al. 2016).
* :mod:`.shattered` — input gradients along a line at initialisation (Balduzzi et al. 2017).
* :mod:`.degradation` — error curves of plain vs residual nets at two depths (He et al. 2015).
* :mod:`.gradient_flow` — finished runs' gradient norm per block, side by side.
* :mod:`.residual_ratio` — how much each residual branch adds to its shortcut.
* :mod:`.summary` — size, cost and depth of a network (:func:`weighted_depth`, :func:`model_summary`).
* :mod:`.over_depth` and :mod:`.samples` — the figures the diagnostic callbacks save.

``resnet-lightning analyze lesion|shattered|degradation|gradient_flow`` runs them (:mod:`.command`).
Nothing here imports Lightning except the command that loads checkpoints and data.
A block's structure (``branch``/``shortcut``/``merge``) is read through
:mod:`resnet_lightning.models.residual`. The callbacks call these functions; nothing here
imports ``callbacks``.
"""

from ..models.residual import find_network, has_structure, residual_blocks
from .lesion import LesionResult, lesion_study, plot_lesion
from .over_depth import plot_over_depth
from .residual_ratio import residual_ratios
from .shattered import LineNet, ShatteredResult, plot_shattered, shattered_gradients
from .summary import model_summary, weighted_depth

__all__ = [
    "LesionResult",
    "LineNet",
    "ShatteredResult",
    "find_network",
    "has_structure",
    "lesion_study",
    "model_summary",
    "plot_lesion",
    "plot_over_depth",
    "plot_shattered",
    "residual_blocks",
    "residual_ratios",
    "shattered_gradients",
    "weighted_depth",
]
