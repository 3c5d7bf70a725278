"""``check_export``: an architecture exported to ONNX computes what it computes eagerly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .architectures import build_model, resolve_architecture
from .common import PluginContractError, isolated, kwargs_repr

def check_export(
    arch: str | Callable[..., nn.Module],
    /,
    *,
    input_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 3,
    tolerance: float = 1e-4,
    **arch_kwargs: Any,
) -> float:
    """Check that an architecture exports to ONNX and computes there what it computes eagerly.

    Exports a freshly built network (eval mode) with ``torch.onnx``'s dynamo exporter and
    a dynamic batch size, as ``resnet-lightning export`` does, runs it in onnxruntime on
    batches of 1 and 4, and compares the logits with the eager model's. Needs the
    ``onnx``, ``onnxscript`` and ``onnxruntime`` packages (``resnet-lightning[export]``).

    Args:
        arch: A registry name or the builder itself.
        input_size: Height and width of the test images.
        in_channels: Input image channels.
        num_classes: Output classes.
        tolerance: Largest accepted difference of a logit, relative to the largest logit
            when that exceeds 1 (a fresh deep network's logits can be in the hundreds, where
            float rounding alone differs by more than 1e-4).
        **arch_kwargs: Options for the builder; keep the model small (a shallow depth):
            exporting takes seconds per few dozen layers.

    Returns:
        The largest absolute difference of a logit seen.

    Raises:
        PluginContractError: the export fails or differs from eager by more than ``tolerance``.
    """
    import tempfile
    from pathlib import Path

    from ..export import ExportError, export

    builder, name = resolve_architecture(arch)
    options = dict(arch_kwargs, num_classes=num_classes, in_channels=in_channels)
    what = f"architecture {name!r} ({kwargs_repr(options)})"
    with isolated(), tempfile.TemporaryDirectory() as scratch:
        model = build_model(builder, name, options).eval()
        try:
            result = export(model, Path(scratch) / "model.onnx", "onnx", (in_channels, input_size, input_size),
                            tolerance=tolerance)
        except ExportError as exc:  # the exporter failed, or the export computes something else
            raise PluginContractError(f"{what}: {exc}") from exc
    if result is None:
        raise PluginContractError("check_export needs onnxruntime to compare the export with eager: pip install onnxruntime")
    return result[0]
