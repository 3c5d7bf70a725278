"""``resnet-lightning export --format safetensors``: a checkpoint as a directory in the Hub layout.

``model.safetensors``, ``config.json`` and a ``README.md`` model card (:mod:`resnet_lightning.hub`),
with the metrics, recipe and data the checkpoint records; then the directory is loaded
back with :func:`resnet_lightning.from_pretrained` and its logits compared with the
checkpoint's network.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import hub, runs
from .factory import from_pretrained

# The hyperparameters config.json holds already; the rest of them is the recipe.
_MODEL_KEYS = ("arch", "block", "arch_kwargs", "num_classes", "in_channels", "weights")


def checkpoint_card(checkpoint: dict[str, Any], ckpt: Path) -> dict[str, Any]:
    """The model card's metrics, recipe and data, from what the checkpoint records."""
    metrics: dict[str, Any] = {}
    for state in (checkpoint.get("callbacks") or {}).values():
        score, monitor = (state.get("best_model_score"), state.get("monitor")) if isinstance(state, dict) else (None, None)
        if monitor and score is not None:
            metrics[f"best {monitor}"] = round(float(score), 6)
    metrics.update(epochs=checkpoint.get("epoch", 0) + 1, steps=checkpoint.get("global_step"))
    hparams = checkpoint.get("hyper_parameters") or {}
    recipe = {key: _plain(value) for key, value in hparams.items() if key not in _MODEL_KEYS and not key.startswith("_")}
    data_options = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    data = {"class": data_options.pop("_class_path")} if "_class_path" in data_options else {}
    data.update({key: _plain(value) for key, value in data_options.items() if not key.startswith("_")})
    run = runs.run_of_checkpoint(ckpt)
    title = f"{run.parent.name} ({run.name}, {ckpt.name})" if run is not None else ckpt.stem
    return {"title": title, "metrics": metrics, "recipe": recipe, "data": data}


def _plain(value: Any) -> Any:
    """``value`` as JSON would have it: a ``class_path``/``init_args`` dict stays, anything else unknown becomes text."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def default_directory(ckpt: Path) -> Path:
    """``<run>/export/<checkpoint name>/`` for a checkpoint in a run, else ``<checkpoint name>/`` beside it."""
    run_dir = runs.run_of_checkpoint(ckpt)
    return (run_dir / "export" if run_dir is not None else ckpt.parent) / ckpt.stem


def export_checkpoint(
    model: nn.Module, checkpoint: dict[str, Any], ckpt: Path, metadata: dict[str, Any], in_channels: int, output: str | None
) -> int:
    """Write the Hub-layout directory of ``ckpt``'s network, reload it, print what was written; the exit status."""
    start = time.perf_counter()
    directory = Path(output) if output else default_directory(ckpt)
    if directory.exists() and not directory.is_dir():
        raise hub.PretrainedError(f"--output {directory} is a file; --format safetensors writes a directory: name a new one")
    config = hub.pretrained_config(
        arch=metadata["arch"], block=metadata.get("block"), arch_kwargs=metadata.get("arch_kwargs"),
        num_classes=metadata["num_classes"], in_channels=in_channels, class_names=metadata.get("class_names"),
        mean=metadata.get("mean"), std=metadata.get("std"), input_size=metadata.get("input_shape"),
        preprocess=metadata.get("preprocess"),
    )
    hub.save_pretrained(model, directory, config, checkpoint_card(checkpoint, ckpt))
    reloaded = from_pretrained(directory).eval()
    x = torch.randn(4, *metadata["input_shape"], generator=torch.Generator().manual_seed(0))  # (4, C, H, W)
    with torch.no_grad():
        difference = float((reloaded(x) - model(x)).abs().max())
    classes = metadata.get("class_names")
    print(
        f"resnet-lightning export: wrote {directory} ({hub.WEIGHTS_FILE}, {hub.CONFIG_FILE}, {hub.CARD_FILE}; "
        f"{config['architecture']}, input [N, {', '.join(map(str, metadata['input_shape']))}], "
        f"{len(classes) if classes else config['num_classes']} classes) in {time.perf_counter() - start:.1f} s; "
        f"reloaded with from_pretrained: max abs diff {difference:.2e}"
    )
    return 0
