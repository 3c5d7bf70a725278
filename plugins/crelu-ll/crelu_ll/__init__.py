"""CReLU networks with Looks-Linear initialisation (Balduzzi et al. 2017) as a resnet-lightning plugin.

Registered through entry points (see ``pyproject.toml``): block ``crelu_ll`` and
architecture ``crelu_ll_net``.
"""

from .blocks import CReLULLBlock, LLConv2d, crelu
from .models import crelu_ll_net

__all__ = ["CReLULLBlock", "LLConv2d", "crelu", "crelu_ll_net"]
