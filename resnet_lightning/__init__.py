"""resnet-lightning: train and compare residual networks with PyTorch Lightning.

Blocks and architectures, the built-in ones included, are plugins found through
the ``resnet_lightning.blocks`` and ``resnet_lightning.architectures`` entry
points (see :mod:`resnet_lightning.registry`).
"""

from importlib.metadata import PackageNotFoundError, version

from .factory import create_model, from_pretrained
from .hub import save_pretrained
from .models import count_macs, count_parameters
from .registry import (
    DuplicatePluginError,
    PluginError,
    PluginLoadError,
    PluginSpec,
    UnknownPluginError,
    get_architecture,
    get_block,
    list_architectures,
    list_blocks,
    list_plugins,
    refresh_plugins,
    register_architecture,
    register_block,
)

try:
    __version__ = version("resnet-lightning")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "ResNetClassifier",
    "DuplicatePluginError",
    "PluginError",
    "PluginLoadError",
    "PluginSpec",
    "UnknownPluginError",
    "__version__",
    "count_macs",
    "count_parameters",
    "create_model",
    "from_pretrained",
    "save_pretrained",
    "get_architecture",
    "get_block",
    "list_architectures",
    "list_blocks",
    "list_plugins",
    "refresh_plugins",
    "register_architecture",
    "register_block",
]


def __getattr__(name: str):
    # Lazy, so `import resnet_lightning` (and the registry) does not import Lightning.
    if name == "ResNetClassifier":
        from .module import ResNetClassifier

        return ResNetClassifier
    raise AttributeError(f"module 'resnet_lightning' has no attribute {name!r}")
