"""``resnet-lightning analyze lesion|shattered|degradation|gradient_flow``: tables and PNG plots, optionally to W&B.

Examples::

    resnet-lightning analyze lesion --ckpt_path resnet56.ckpt plain56.ckpt --output_dir analyses/lesion
    resnet-lightning analyze lesion --ckpt_path best.ckpt --data CIFAR10DataModule --data.root data/
    resnet-lightning analyze shattered --depth 24 --output_dir analyses/shattered --wandb true
    resnet-lightning analyze degradation --runs */version_*/wandb/offline-run-* --output_dir analyses/degradation
    resnet-lightning analyze gradient_flow --runs */version_*/wandb/offline-run-*-<plain56 id> */version_*/wandb/offline-run-*-<resnet56 id>

Each writes ``<name>.png``, ``<name>.csv`` and ``<name>.json`` to ``--output_dir``;
``--wandb true`` also logs them to a W&B run (``job_type=analysis``; offline
without an API key or network).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentError, ArgumentParser, Namespace
from lightning.pytorch import LightningDataModule

from .. import data  # noqa: F401  (imports the DataModules so --data finds them by name)
from ..errors import UsageError, did_you_mean, one_line
from ..tracking.outputs import write_csv
from .errors import AnalysisInputError, AnalysisInputMissing

# Each count option: (smallest value, what it means, an example). Checked before anything is read or computed.
RANGES: dict[str, dict[str, tuple[int, str, int]]] = {
    "lesion": {
        "max_removed": (0, "an integer >= 0 (0: single-block deletions only)", 10),
        "trials": (1, "an integer >= 1", 10),
        "limit_batches": (1, "an integer >= 1 (leave it out for the whole split)", 20),
    },
    "shattered": {
        "depth": (1, "an integer >= 1", 24),
        "shallow_depth": (0, "an integer >= 0 (0: no shallow reference)", 1),
        "width": (1, "an integer >= 1", 200),
        "points": (2, "an integer >= 2", 256),
        "seeds": (1, "an integer >= 1", 20),
        "max_lag": (1, "an integer >= 1 and below --points", 32),
    },
}
ANALYSES = ("lesion", "shattered", "degradation", "gradient_flow")
WANDB_PROJECT_FORBIDDEN = "/\\#?%:"  # W&B refuses project names with these, or over 128 characters


def _common(parser: ArgumentParser, name: str) -> None:
    parser.add_argument("--output_dir", type=str, default=f"analyses/{name}", help="Where the PNG, CSV and JSON go.")
    parser.add_argument("--wandb", type=bool, default=False, help="Also log the results to a W&B run.")
    parser.add_argument("--wandb_project", type=str, default="resnet-lightning-analyses", help="W&B project.")


def build_parser() -> ArgumentParser:
    """The ``analyze`` parser with its subcommands."""
    parser = ArgumentParser(exit_on_error=False, prog="resnet-lightning analyze", description=__doc__.split("\n")[0])
    commands = parser.add_subcommands(dest="analysis")

    lesion = ArgumentParser(exit_on_error=False, description="Delete blocks from trained networks (Veit et al. 2016).")
    lesion.add_argument("--ckpt_path", type=str, nargs="+", required=True, help="One or more checkpoints to compare.")
    lesion.add_subclass_arguments(LightningDataModule, "data", help="The DataModule to evaluate on, e.g. DigitsDataModule.")
    lesion.set_defaults({"data": {"class_path": "resnet_lightning.data.DigitsDataModule"}})
    lesion.add_argument("--split", type=str, default="test", choices=["test", "val"], help="Which split to evaluate.")
    lesion.add_argument("--max_removed", type=int, default=10,
                        help="Largest number of random blocks deleted at once (>= 0; 0: single deletions only).")
    lesion.add_argument("--trials", type=int, default=10, help="Random subsets per number deleted (>= 1).")
    lesion.add_argument("--seed", type=int, default=0, help="Seed of the random subsets.")
    lesion.add_argument("--limit_batches", type=int, default=None, help="Evaluate on at most this many batches (>= 1).")
    _common(lesion, "lesion")
    commands.add_subcommand("lesion", lesion)

    shattered = ArgumentParser(exit_on_error=False, description="Input gradients along a line at initialisation (Balduzzi et al. 2017).")
    shattered.add_argument("--depth", type=int, default=24, help="Layers of the feed-forward and the residual net (>= 1).")
    shattered.add_argument("--shallow_depth", type=int, default=1, help="Layers of the shallow reference net (0: none).")
    shattered.add_argument("--width", type=int, default=200, help="Units per layer (>= 1).")
    shattered.add_argument("--points", type=int, default=256, help="Inputs evenly spaced on [-2, 2] (>= 2).")
    shattered.add_argument("--seeds", type=int, default=20, help="Random initialisations per network (>= 1).")
    shattered.add_argument("--max_lag", type=int, default=32, help="Largest autocorrelation lag (>= 1, below --points).")
    _common(shattered, "shattered")
    commands.add_subcommand("shattered", shattered)

    degradation = ArgumentParser(exit_on_error=False, description="Error curves of plain vs residual nets (He et al. 2015, Fig. 1/6).")
    degradation.add_argument("--runs", type=str, nargs="+", required=True,
                             help="W&B run dirs or CSVLogger dirs (runs that are not fits, e.g. a test's, are skipped).")
    degradation.add_argument("--title", type=str, default="", help="Figure title.")
    _common(degradation, "degradation")
    commands.add_subcommand("degradation", degradation)

    flow = ArgumentParser(exit_on_error=False, description="Gradient norm per block over depth of finished runs, side by side.")
    flow.add_argument("--runs", type=str, nargs="+", required=True, help="Run dirs holding gradient_flow.csv.")
    _common(flow, "gradient_flow")
    commands.add_subcommand("gradient_flow", flow)
    return parser


def check_arguments(name: str, args: Namespace) -> None:
    """Refuse, before anything is read or computed, a value no analysis can use: one line naming it, the range, an example.

    Raises:
        UsageError: The value, what is expected and an example.
    """
    def refuse(option: str, value: Any, expected: str, example: Any) -> None:
        raise UsageError(f"analyze {name}: --{option} {value} is out of range; expected {expected}, e.g. --{option} {example}")

    for option, (low, expected, example) in RANGES.get(name, {}).items():
        value = args[option]
        if value is not None and value < low:
            refuse(option, value, expected, example)
    if name == "shattered" and args.max_lag >= args.points:
        refuse("max_lag", args.max_lag, f"an integer >= 1 and below --points ({args.points})", min(32, args.points - 1))
    project = args.wandb_project
    if args.wandb and (not project.strip() or len(project) > 128 or any(c in project for c in WANDB_PROJECT_FORBIDDEN)):
        raise UsageError(
            f"analyze {name}: --wandb_project {project!r} is not a W&B project name; expected 1 to 128 characters without "
            f"{' '.join(WANDB_PROJECT_FORBIDDEN)}, e.g. --wandb_project resnet-lightning-analyses"
        )
    for path in args.get("ckpt_path") or []:
        if not Path(path).is_file():
            what = "a directory" if Path(path).is_dir() else "no such file"
            raise AnalysisInputMissing(f"--ckpt_path {path}: {what}; pass the path of a .ckpt file, e.g. RUN/version_0/checkpoints/last.ckpt")
    _check_output_dir(Path(args.output_dir))


_WRONG_TYPE = re.compile(r'Parser key "(\w+)": Expected a <class \'(\w+)\'>\. Got value: (.*?)(?:; see |$)')
_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def usage_error(err: ArgumentError, argv: list[str]) -> UsageError:
    """A parse error of the ``analyze`` parsers (built with ``exit_on_error=False``) as one line.

    jsonargparse's "Parser key "trials": Expected a <class 'int'>. Got value: abc" becomes the
    option, the value, what is expected and an example; any other error names the analysis
    and its ``--help``.
    """
    message = " ".join(str(err).split())
    name = next((a for a in argv if a in ANALYSES), "")
    match = _WRONG_TYPE.search(message)
    if match is not None:
        option, kind, value = match.groups()
        expected = RANGES.get(name, {}).get(option, (None, _TYPE_NAMES.get(kind, kind), None))
        example = f", e.g. --{option} {expected[2]}" if expected[2] is not None else ""
        return UsageError(f"analyze {name}: --{option} {value!r} is not {_TYPE_NAMES.get(kind, kind)}; expected {expected[1]}{example}")
    command = f"analyze {name}".strip()
    typed = next((a for a in argv if not a.startswith("-")), "")
    hint = did_you_mean(typed, ANALYSES) if "invalid choice" in message else ""
    return UsageError(one_line(f"{command}: {message.rstrip('.')}", hint, f"see `resnet-lightning {command} --help`"))

def _check_output_dir(output: Path) -> None:
    """The results can be written to ``output``: it is (or can be created as) a writable directory."""
    existing = output
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == output else f"cannot be created: {existing} is a file"
        raise UsageError(f"analyze: --output_dir {output} {where}; pass a directory for the PNG, CSV and JSON")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"analyze: --output_dir {output}: {existing} is not writable; pass a directory you can write to")


def _batches(datamodule: LightningDataModule, split: str, limit: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    datamodule.prepare_data()
    datamodule.setup("test" if split == "test" else "validate")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    batches = []
    for i, (images, labels) in enumerate(loader):
        if limit is not None and i >= limit:
            break
        batches.append((images, labels))
    if not batches:
        raise AnalysisInputError(f"the {type(datamodule).__name__} {split} split is empty; choose --split test or val")
    return batches


def _run_lesion(args: Namespace, datamodule: LightningDataModule) -> tuple[Any, list[str], list[list[Any]], dict[str, Any]]:
    from ..module import ResNetClassifier
    from .lesion import lesion_rows, lesion_study, plot_lesion

    modules = []
    for path in args.ckpt_path:
        if not Path(path).is_file():
            raise AnalysisInputMissing(f"--ckpt_path {path}: no such checkpoint; pass the path of a .ckpt file")
        module = ResNetClassifier.load_from_checkpoint(path, map_location="cpu")
        hp = module.hparams
        expected = (getattr(datamodule, "in_channels", hp.in_channels), getattr(datamodule, "num_classes", hp.num_classes))
        if (hp.in_channels, hp.num_classes) != expected:  # checked before any data is read
            raise AnalysisInputError(
                f"{path} was trained for {hp.in_channels} input channels and {hp.num_classes} classes, but "
                f"{type(datamodule).__name__} has {expected[0]} and {expected[1]}; pass the --data it was trained on"
            )
        modules.append(module)
    batches = _batches(datamodule, args.split, args.limit_batches)
    results = []
    labels = ["-".join(str(p) for p in (m.hparams.arch, m.hparams.block) if p) for m in modules]
    for module, label, path in zip(modules, labels, args.ckpt_path):
        hp = module.hparams
        if labels.count(label) > 1:  # the summary is keyed by label: two checkpoints of one architecture stay apart
            label = f"{label} ({path})"
        results.append(
            lesion_study(module.model, batches, label, args.max_removed, args.trials, args.seed, hp.num_classes, show_progress=True)
        )
    columns, rows = lesion_rows(results)
    summary = {
        r.label: {
            "baseline": r.baseline,
            "removable_blocks": r.removable,
            "num_blocks": r.num_blocks,
            "mean_single_deletion": sum(r.single.values()) / max(1, len(r.single)),
            "worst_single_deletion": min(r.single.values(), default=None),
            "mean_by_k_removed": {k: sum(v) / len(v) for k, v in r.random.items()},
        }
        for r in results
    }
    return plot_lesion(results), columns, rows, summary


def _run_shattered(args: Namespace) -> tuple[Any, list[str], list[list[Any]], dict[str, Any]]:
    from .shattered import plot_shattered, shattered_gradients, shattered_rows

    configs = ([(args.shallow_depth, False)] if args.shallow_depth > 0 else []) + [(args.depth, False), (args.depth, True)]
    results = shattered_gradients(configs, args.width, args.points, args.seeds, args.max_lag, show_progress=True)
    columns, rows = shattered_rows(results)
    summary = {r.label: {"lag1_autocorrelation": r.lag1, "depth": r.depth, "residual": r.residual} for r in results}
    return plot_shattered(results), columns, rows, summary


def _run_degradation(args: Namespace) -> tuple[Any, list[str], list[list[Any]], dict[str, Any]]:
    from .degradation import degradation_rows, plot_degradation, read_fits

    runs, skipped = read_fits(args.runs)
    if not runs:
        raise AnalysisInputError(
            f"none of the {len(args.runs)} --runs is a fit: {', '.join(skipped)}; pass the run directories of fits, "
            "e.g. RUN/version_0/wandb/offline-run-*"
        )
    if skipped:
        print(f"degradation: skipped {len(skipped)} run(s) that are not fits: {', '.join(skipped)}", file=sys.stderr)
    columns, rows = degradation_rows(runs)
    summary = {
        r.label: {
            "residual": r.residual,
            "depth": r.depth,
            "final_train_error": r.train[max(r.train)] if r.train else None,
            "final_val_error": r.val[max(r.val)] if r.val else None,
        }
        for r in runs
    }
    return plot_degradation(runs, args.title), columns, rows, summary


def _run_gradient_flow(args: Namespace) -> tuple[Any, list[str], list[list[Any]], dict[str, Any]]:
    from .gradient_flow import (
        gradient_flow_rows,
        plot_gradient_flow,
        read_gradient_flow,
    )

    runs = [read_gradient_flow(path) for path in args.runs]
    labels = [r.label for r in runs]
    for r, path in zip(runs, args.runs):
        if labels.count(r.label) > 1:  # the summary is keyed by label: two runs of one architecture stay apart
            r.label = f"{r.label} ({path})"
    columns, rows = gradient_flow_rows(runs)
    summary = {
        r.label: {"steps": r.steps, "max_over_min_at_last_step": max(r.norms[-1]) / max(min(r.norms[-1]), 1e-30)}
        for r in runs if r.norms
    }
    return plot_gradient_flow(runs), columns, rows, summary


def _log_to_wandb(
    name: str, project: str, config: dict[str, Any], png: Path, columns: list[str], rows: list[list[Any]],
    summary: dict[str, Any],
) -> None:
    import wandb

    from ..tracking.wandb_online import init_or_offline, resolve_wandb_mode

    resolve_wandb_mode(save_dir=png.parent)
    # An explicit dir: the run goes beside the PNG (<output_dir>/wandb/), whatever wandb cached earlier.
    run = init_or_offline(project=project, job_type="analysis", group=name, config=config, dir=str(png.parent.resolve()))
    try:
        run.log({f"analysis/{name}": wandb.Image(str(png)), f"analysis/{name}_table": wandb.Table(columns=columns, data=rows)})
        run.summary.update({f"analysis/{name}_summary": summary})
    finally:
        run.finish()


def main(argv: list[str]) -> None:
    """Entry of ``resnet-lightning analyze``; prints where the results were written.

    Args:
        argv: The arguments after ``analyze``.
    """
    parser = build_parser()
    try:
        config = parser.parse_args(argv)
    except ArgumentError as err:  # exit_on_error=False: a mistake in the command line comes here
        raise usage_error(err, argv) from None
    name = config.analysis
    args = config[name]
    check_arguments(name, args)
    if name == "lesion":
        init = parser.instantiate_classes(config)
        figure, columns, rows, summary = _run_lesion(args, init[name].data)
    elif name == "shattered":
        figure, columns, rows, summary = _run_shattered(args)
    elif name == "degradation":
        figure, columns, rows, summary = _run_degradation(args)
    else:
        figure, columns, rows, summary = _run_gradient_flow(args)

    import matplotlib.pyplot as plt

    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    png = output / f"{name}.png"
    figure.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(figure)
    write_csv(output / f"{name}.csv", columns, rows)
    (output / f"{name}.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"{name}: wrote {png}, {output / f'{name}.csv'} and {output / f'{name}.json'}")
    for label, values in summary.items():
        print(f"  {label}: {json.dumps(values, default=str)}")
    if args.wandb:
        plain_config = json.loads(parser.dump(config, format="json"))[name]
        _log_to_wandb(name, args.wandb_project, plain_config, png, columns, rows, summary)
