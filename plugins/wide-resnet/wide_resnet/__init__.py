"""Wide Residual Networks (Zagoruyko & Komodakis 2016) as a resnet-lightning plugin.

Registered through entry points (see ``pyproject.toml``): block ``wide_basic``,
architectures ``wide_resnet`` (any WRN-d-k) and ``wrn16_8``, ``wrn28_10``, ``wrn40_4``.
"""

from .blocks import WideBasicBlock
from .models import wide_resnet, wrn16_8, wrn28_10, wrn40_4

__all__ = ["WideBasicBlock", "wide_resnet", "wrn16_8", "wrn28_10", "wrn40_4"]
