"""The LightningModule (:class:`ResNetClassifier`, training logic only) and the pieces it is built from.

``classifier.py`` is the module; ``options.py`` checks its options before anything is built,
``optimization.py`` builds the optimizer and learning-rate schedule, ``initial_weights.py``
fetches and loads ``--model.weights``, ``state_dict_check.py`` words a checkpoint that does
not fit the network.
"""

from .classifier import NonFiniteLossError, ResNetClassifier
from .options import ModelConfigError

__all__ = ["ModelConfigError", "NonFiniteLossError", "ResNetClassifier"]
