"""Contract checks for plugin authors, to call from a plugin's own test suite.

::

    from resnet_lightning.testing import check_architecture, check_block

    def test_my_block_keeps_the_block_contract():
        check_block("my_block")              # a registry name or the class, plus block options

    def test_my_net_keeps_the_architecture_contract():
        check_architecture("my_net", depth=8)  # a registry name or the builder, plus its options

Every check builds small instances and runs tiny inputs on the CPU (seconds, not
minutes). A broken contract raises :class:`PluginContractError`, an
``AssertionError`` so pytest reports a failed test, naming the block or
architecture, the arguments it was built with, what was expected and what it did.
The caller's random state and thread count are left as they were.

The checks, by what they check: :mod:`.blocks` (:func:`check_block`),
:mod:`.structure` (``branch``/``shortcut``/``merge``, drop-path, zero-init),
:mod:`.architectures` (:func:`check_architecture`), :mod:`.export`
(:func:`check_export`) and :mod:`.shapes` (:func:`check_block_shape`, the shape
contract that :func:`~resnet_lightning.create_model` checks of every network it
builds and ``resnet-lightning plugins`` of every plugin).
"""

from .architectures import check_architecture
from .blocks import check_block
from .common import FRAMEWORK_BLOCK_KWARGS, PluginContractError
from .export import check_export
from .shapes import check_block_shape, check_network_blocks

__all__ = [
    "FRAMEWORK_BLOCK_KWARGS",
    "PluginContractError",
    "check_architecture",
    "check_block",
    "check_block_shape",
    "check_export",
    "check_network_blocks",
]
