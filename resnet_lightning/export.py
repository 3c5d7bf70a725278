"""``resnet-lightning export``: a trained checkpoint as ONNX or a ``torch.export`` program, checked against eager.
(``--format safetensors``: a directory in the Hub layout instead, :mod:`resnet_lightning.hub_export`.)

The exported graph is the network alone (images in, logits out), with a dynamic
batch size. What a user of the file needs besides it travels inside it: the class
names, the normalisation (mean, std), the input shape and, for models trained on image
files, every step from a file to the input (``preprocess``), as ONNX ``metadata_props``
or as the ``resnet_lightning.json`` extra file of the ``.pt2`` archive
(``torch.export.load(path, extra_files={"resnet_lightning.json": ""})``). The command
then runs the file (onnxruntime, or the loaded ``ExportedProgram``) on batches of 1
and 4 and prints the largest absolute difference from the eager model.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import runs
from .checkpoint_io import read_checkpoint, require_complete_checkpoint
from .errors import CommandParser, UserError
from .storage import StorageFullError, atomic_path, storage_full

FORMATS = ("onnx", "pt2")
METADATA_FILE = "resnet_lightning.json"  # the .pt2 extra file holding the metadata
CHECK_BATCHES = (1, 4)


class ExportError(UserError, ValueError):
    """The export cannot be made or does not match the eager model; the message says what to do."""


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike[str], metadata: dict[str, Any]) -> None:
    """Write ``model`` as ONNX through ``torch.onnx``'s dynamo exporter, batch size dynamic.

    Args:
        model: The network, in eval mode.
        example: An input batch of the shape to export (the batch dimension is made dynamic).
        path: The ``.onnx`` file.
        metadata: Written to the model's ``metadata_props``; values that are not strings as JSON.
    """
    try:
        import onnx
    except ImportError:
        raise ExportError("--format onnx needs the onnx and onnxscript packages: pip install 'resnet-lightning[export]'") from None
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        model, (example,), dynamo=True, dynamic_shapes=({0: batch},),
        input_names=["images"], output_names=["logits"], verbose=False,
    )
    # Built in memory and written once by onnx.save (Python's own file writes): torch's writer
    # of external data reports a full disk as "9216 requested and 3440 written", without errno.
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    onnx.save(proto, str(path))


def export_pt2(model: nn.Module, example: torch.Tensor, path: str | os.PathLike[str], metadata: dict[str, Any]) -> None:
    """Write ``model`` as a ``torch.export`` archive (``.pt2``), batch size dynamic, metadata in an extra file."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    # Into memory first: torch's zip writer, failing on a full disk while writing a file,
    # aborts the whole process from a destructor (std::terminate), past any except.
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(metadata)})
    Path(path).write_bytes(buffer.getbuffer())


def max_abs_difference(
    model: nn.Module, path: str | os.PathLike[str], fmt: str, input_shape: Sequence[int], batches: Sequence[int] = CHECK_BATCHES
) -> tuple[float, float] | None:
    """The largest absolute difference between the exported file's logits and the eager model's, and the largest logit.

    Random normal inputs (a fixed seed) of each batch size in ``batches``. None when
    onnxruntime is not installed (ONNX only).
    """
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            return None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])  # noqa: E731
    else:
        exported = torch.export.load(str(path)).module()
        run = lambda x: exported(x)  # noqa: E731
    generator = torch.Generator().manual_seed(0)
    worst = scale = 0.0
    with torch.no_grad():
        for n in batches:
            x = torch.randn(n, *input_shape, generator=generator)  # (n, C, H, W), normalised-image scale
            eager = model(x)  # (n, num_classes)
            worst = max(worst, float((run(x) - eager).abs().max()))
            scale = max(scale, float(eager.abs().max()))
    return worst, scale


def export(
    model: nn.Module,
    path: str | os.PathLike[str],
    fmt: str,
    input_shape: Sequence[int],
    metadata: dict[str, Any] | None = None,
    tolerance: float = 1e-4,
) -> tuple[float, float] | None:
    """Export ``model`` to ``path`` and check it against eager.

    The check passes when no logit differs by more than ``tolerance`` times the
    largest logit (or times 1 when the logits are smaller): float32 rounding differs
    between runtimes by a fraction of the values, so a network with logits in the
    hundreds (a fresh deep one) differs by more than 1e-4 for no fault of the export.

    Returns:
        The largest absolute difference and the largest absolute logit; None when
        onnxruntime is not installed to check an ONNX file.

    Raises:
        ExportError: An unknown format, or the export differs from eager by more than allowed.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model = model.eval()
    example = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))  # (2, C, H, W)
    with torch.no_grad():
        try:
            (export_onnx if fmt == "onnx" else export_pt2)(model, example, path, metadata or {})
        except ExportError:
            raise
        except Exception as exc:  # the exporter's: an operation it cannot translate, a data-dependent branch
            if storage_full(exc) is not None:  # a full disk, not the exporter (the CLI says so)
                raise
            other = "pt2" if fmt == "onnx" else "onnx"
            raise ExportError(
                f"{type(model).__name__} does not export to {fmt} ({_root_cause(exc)}); the forward pass "
                f"must be traceable by torch.export (no Python branches on tensor values). Try --format {other}, "
                "or see docs/writing-a-plugin.md"
            ) from exc
    result = max_abs_difference(model, path, fmt, input_shape)
    if result is not None and not result[0] <= tolerance * max(1.0, result[1]):
        raise ExportError(
            f"{path}: the exported model's logits differ from the eager model's by up to {result[0]:.3g} "
            f"(logits up to {result[1]:.3g}, tolerance {tolerance:g} relative); the architecture has an operation the exporter translates differently. "
            "Try the other --format, or raise --tolerance if the difference is acceptable"
        )
    return result


def _root_cause(exc: BaseException) -> str:
    """``"Type: first line"`` of the innermost cause (the exporters wrap the real reason twice), without colour codes."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 300 else text[:297] + "..."


def checkpoint_metadata(checkpoint: dict[str, Any], ckpt_path: Path) -> dict[str, Any]:
    """What the export records about the checkpoint: model options, classes, normalisation, input shape.

    ``preprocess``: for models trained on image files, every step from an image file to
    the model's input (``ImageFilesDataModule.preprocess``; the README's ONNX example follows it).
    """
    hparams = checkpoint.get("hyper_parameters", {})
    spec = dict(checkpoint.get("data_spec") or {})
    for value in checkpoint.values():  # a DataModule's own state (ImageFolderDataModule saves its classes)
        if isinstance(value, dict) and ("class_names" in value or "preprocess" in value):
            spec.update({k: v for k, v in value.items() if v is not None})
    if spec.get("preprocess") is None and spec.get("mean") is not None:
        spec["preprocess"] = _saved_preprocess(checkpoint.get("datamodule_hyper_parameters") or {}, spec)
    return {
        "producer": "resnet-lightning",
        "output": "logits",
        "arch": hparams.get("arch"),
        "block": hparams.get("block"),
        "arch_kwargs": hparams.get("arch_kwargs"),
        "num_classes": hparams.get("num_classes"),
        "class_names": spec.get("class_names"),
        "mean": spec.get("mean"),
        "std": spec.get("std"),
        "input_shape": spec.get("input_shape"),
        "preprocess": spec.get("preprocess"),
        "checkpoint": str(ckpt_path),
    }


def _saved_preprocess(data_options: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    """``preprocess`` for a checkpoint saved before DataModules recorded it, from the DataModule's options."""
    if "eval_crop_size" not in data_options or not data_options.get("image_size"):
        return None  # not a DataModule over image files
    from .data.image_files import eval_sizes, preprocess_spec  # late: torchvision is slow to import

    resize, crop = eval_sizes(data_options["image_size"], data_options.get("eval_resize_size"), data_options.get("eval_crop_size"))
    return preprocess_spec("L" if data_options.get("grayscale") else "RGB", resize, crop, spec["mean"], spec["std"])


def resolve_checkpoint(ckpt_path: str, run: str | None, root: Path) -> Path:
    """``--ckpt_path`` as a file: a path, or ``best``/``last`` of a run, as ``test`` resolves them."""
    from .cli.run_choice import pick_checkpoint as _pick_checkpoint  # the rule test/validate/predict use

    if ckpt_path not in ("best", "last"):
        require_complete_checkpoint(ckpt_path)
        return Path(ckpt_path).resolve()
    if run is not None and runs.version_of(Path(run)) is not None and Path(run).is_dir():
        run_dir = Path(run).resolve()  # a run directory
    else:
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and runs.list_runs(root, p.name)) if root.is_dir() else []
        if run is not None:
            name_dir = Path(run) if Path(run).is_dir() else root / run
            root, names = name_dir.resolve().parent, [name_dir.name]
        if len(names) != 1:
            found = f"runs under {root}: {', '.join(names)}" if names else f"no runs under {root}"
            raise runs.RunNotFoundError(
                f"--ckpt_path {ckpt_path} needs --run: a run directory (NAME/version_N) or a run name ({found}); "
                "or pass --ckpt_path PATH/TO/FILE.ckpt"
            )
        run_dir, _ = runs.newest_run_with_checkpoint(root, names[0])
    ckpt = _pick_checkpoint(runs.checkpoint_dir(run_dir), ckpt_path)
    require_complete_checkpoint(ckpt)
    return ckpt


def default_output(ckpt: Path, fmt: str) -> Path:
    """``<run>/export/<checkpoint name>.<fmt>`` for a checkpoint in a run, else beside the checkpoint."""
    run_dir = runs.run_of_checkpoint(ckpt)
    folder = run_dir / "export" if run_dir is not None else ckpt.parent
    return folder / f"{ckpt.stem}.{fmt}"


def _input_shape(metadata: dict[str, Any], input_size: int | None, in_channels: int) -> list[int]:
    if input_size is not None:
        return [in_channels, input_size, input_size]
    if metadata.get("input_shape"):
        return list(metadata["input_shape"])
    raise ExportError(
        "the checkpoint does not record its input size (it was saved before exports recorded it); "
        "pass --input_size N (the side of the square images the model was trained on)"
    )


def _positive_int(text: str) -> int:
    value = int(text) if text.strip().lstrip("+-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of pixels, e.g. 32")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number >= 0, e.g. 1e-4")
    return value


def main(argv: list[str] | None = None) -> int:
    """``resnet-lightning export --ckpt_path PATH --format onnx|pt2 [--output FILE]``."""
    parser = CommandParser(
        prog="resnet-lightning export",
        description="Export a trained checkpoint to ONNX or torch.export (.pt2), with a dynamic batch size and the "
        "class names and normalisation in the file's metadata, checked against the eager model.",
    )
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint file, or best / last of a run (see --run)")
    parser.add_argument("--run", default=None, help="with best/last: a run directory (NAME/version_N) or a run name "
                        "(its newest run with a checkpoint); needed when the root holds runs of several names")
    parser.add_argument("--root", default=".", help="where the runs are (fit's --trainer.default_root_dir; default .)")
    parser.add_argument("--format", choices=(*FORMATS, "safetensors"), default="onnx", help="onnx (torch.onnx, dynamo), pt2 "
                        "(torch.export) or safetensors (a directory: model.safetensors, config.json, README.md)")
    parser.add_argument("--output", default=None, help="the file to write (default: <run>/export/<checkpoint>.<format>)")
    parser.add_argument("--input_size", type=_positive_int, default=None, help="image side (default: the one the checkpoint was trained on)")
    parser.add_argument("--tolerance", type=_non_negative_float, default=1e-4,
                        help="largest accepted |exported - eager| logit, relative to the largest logit if above 1 (default 1e-4)")
    args = parser.parse_args(argv)

    from .module import ResNetClassifier  # late: Lightning is slow to import and --help needs none of it

    ckpt = resolve_checkpoint(args.ckpt_path, args.run, Path(args.root).resolve())
    checkpoint = read_checkpoint(ckpt)
    metadata = checkpoint_metadata(checkpoint, ckpt)
    # weights=None: the checkpoint holds the trained weights; the ones the fit started from are not needed.
    classifier = ResNetClassifier.load_from_checkpoint(ckpt, map_location="cpu", weights=None)
    shape = _input_shape(metadata, args.input_size, classifier.hparams.in_channels)
    metadata["input_shape"] = shape
    if args.format == "safetensors":  # no graph: tensors and the config that rebuilds the network
        from .hub_export import export_checkpoint

        return export_checkpoint(classifier.model.float().eval(), checkpoint, ckpt, metadata, classifier.hparams.in_channels, args.output)
    output = Path(args.output) if args.output else default_output(ckpt, args.format)
    if output.is_dir():  # as cp does: into the directory, under the checkpoint's name
        output = output / f"{ckpt.stem}.{args.format}"
    if output.suffix != f".{args.format}":
        parser.error(f"--output {output} does not end in .{args.format}, the --format written; name it {output.with_suffix('.' + args.format).name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    model = classifier.model.float().eval()
    start = time.perf_counter()
    # Written beside the target and renamed: a failed export or check never leaves a file that looks complete.
    with atomic_path(output, workspace=True) as staged:
        try:
            result = export(model, staged, args.format, shape, metadata, args.tolerance)
        except OSError as error:
            if (full := storage_full(error)) is None:
                raise
            raise StorageFullError(full, output, "nothing was written there") from error
    seconds = time.perf_counter() - start
    if result is None:
        check = "not checked (pip install onnxruntime to check it against the eager model)"
    else:
        check = f"max abs diff vs eager {result[0]:.2e} (logits up to {result[1]:.3g}) at batch {' and '.join(map(str, CHECK_BATCHES))}"
    classes = metadata["class_names"]
    print(f"resnet-lightning export: wrote {output} ({args.format}, input [N, {', '.join(map(str, shape))}], "
          f"{len(classes) if classes else metadata['num_classes']} classes) in {seconds:.1f} s; {check}")
    return 0


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata an export wrote into ``path`` (``.onnx`` or ``.pt2``), values decoded."""
    if str(path).endswith(".pt2"):
        # Read from the archive itself: torch.export.load would unpickle the program's constants.
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith(f"extra/{METADATA_FILE}")), None)
            if member is None:
                raise ExportError(f"{path} holds no {METADATA_FILE}; it was not written by resnet-lightning export")
            return json.loads(archive.read(member))
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    decoded = {}
    for key, value in props.items():
        try:
            decoded[key] = json.loads(value)
        except json.JSONDecodeError:
            decoded[key] = value
    return decoded


__all__ = ["ExportError", "export", "export_onnx", "export_pt2", "main", "max_abs_difference", "read_metadata"]
