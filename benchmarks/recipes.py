"""Benchmark 6, training recipes: what each trick costs per step, and digits accuracy with MixUp + EMA.

**Cost.** A CIFAR ResNet-20 (batch 128, fp32) trains through the real CLI on
CIFAR-10-format files (the test suite's writer) with one trick switched on at a time:
MixUp, CutMix, both, EMA of the weights, and, with the data ``on_device``, random
erasing and TrivialAugmentWide as per-image batch operations; then all together. The
variants alternate within each round (baseline, variant 1, ..., baseline's next
round), each a fresh fit timed by :class:`~benchmarks.synthetic.StepTimer` over
whole iterations after a warm-up; a variant's cost is the median over rounds of its
median step time over the same round's baseline. Two DataLoader rows show the
per-image transforms (``num_workers=0``: in the training process, so on the step's
clock), and one row the test-time cost of flip TTA (a batch of twice the size).

**Accuracy.** The main job (``configs/digits.yaml``, ResNet-20 on scikit-learn's
digits, 15 epochs) as it is, with MixUp (alpha 0.2), with EMA (decay 0.99), and with
both; ``test --ckpt_path best`` on each. Not asserted anywhere: recorded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import REPO_ROOT, markdown_table, median
from benchmarks.synthetic import cli_fit, quiet

BUDGET = 1.05  # the batch ops may make a step at most 5% slower

COST_VARIANTS: list[tuple[str, list[str]]] = [
    ("baseline: on_device, crop + flip", []),
    ("+ MixUp 0.2", ["--model.mixup_alpha=0.2"]),
    ("+ CutMix 1.0", ["--model.cutmix_alpha=1.0"]),
    ("+ MixUp 0.2 / CutMix 1.0 (one per batch)", ["--model.mixup_alpha=0.2", "--model.cutmix_alpha=1.0"]),
    ("+ EMA, every step", ["--model.ema_decay=0.999"]),
    ("+ random erasing 0.1 (batch op)", ["--data.random_erasing=0.1"]),
    ("+ TrivialAugmentWide (batch op, per image)", ["--data.auto_augment=trivialaugment"]),
    ("+ all of the above", ["--model.mixup_alpha=0.2", "--model.cutmix_alpha=1.0", "--model.ema_decay=0.999",
                            "--data.random_erasing=0.1", "--data.auto_augment=trivialaugment"]),
    ("DataLoader baseline: per-image crop + flip", ["--data.on_device=false"]),
    ("DataLoader + TrivialAugmentWide + erasing (per image)", ["--data.on_device=false", "--data.auto_augment=trivialaugment",
                                                               "--data.random_erasing=0.1"]),
]

ACCURACY_VARIANTS: list[tuple[str, list[str]]] = [
    ("main job (configs/digits.yaml)", []),
    ("+ MixUp 0.2", ["--model.mixup_alpha=0.2"]),
    ("+ EMA 0.99", ["--model.ema_decay=0.99"]),
    ("+ MixUp 0.2 + EMA 0.99", ["--model.mixup_alpha=0.2", "--model.ema_decay=0.99"]),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", choices=["cost", "accuracy", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds of the cost part (default 5; quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per fit (default 8; quick 2)")


def _cost(root: Path, rounds: int, warmup: int, steps: int) -> dict[str, Any]:
    data = ["--data", "resnet_lightning.data.CIFAR10DataModule", f"--data.data_dir={root}", "--data.val_size=100",
            "--data.batch_size=128", "--data.num_workers=0", "--data.on_device=true"]
    common = [*data, "--model.arch=cifar_resnet20", "--trainer.max_epochs=1", "--trainer.accelerator=cpu",
              "--trainer.limit_val_batches=0", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
              "--seed_everything=0", "--trainer.callbacks+=benchmarks.synthetic.StepTimer",
              f"--trainer.callbacks.warmup={warmup}", f"--trainer.callbacks.steps={steps}"]
    per_round: dict[str, list[float]] = {name: [] for name, _ in COST_VARIANTS}
    cli_fit([*common, *COST_VARIANTS[-3][1]])  # untimed: the first fit of a process pays for lazy imports and caches
    for _ in range(rounds):
        for name, extra in COST_VARIANTS:
            timer, _ = cli_fit([*common, *extra])
            per_round[name].append(median(timer.step_seconds))
    baseline, loader_baseline = COST_VARIANTS[0][0], COST_VARIANTS[-2][0]
    rows = []
    for name, extra in COST_VARIANTS:
        reference = loader_baseline if name.startswith("DataLoader +") else baseline
        ratios = [mine / base for mine, base in zip(per_round[name], per_round[reference])]
        rows.append({"variant": name, "options": " ".join(extra) or "–", "step_ms": 1000 * median(per_round[name]),
                     "ratio": median(ratios), "rounds": ", ".join(f"{r:.3f}" for r in ratios)})
    ops = _op_cost(repeats=rounds * 20)
    step_ms = rows[0]["step_ms"]
    for op in ops:
        op["share"] = op["ms"] / step_ms
    return {"rows": rows, "ops": ops, "tta": _tta_cost(rounds * 10)}


def _op_cost(repeats: int) -> list[dict[str, Any]]:
    """Milliseconds of each batch operation alone on a batch of 128 CIFAR images (alternating, medians).

    Steadier than the fits' ratios on a loaded machine: a few ms measured directly, set
    against the baseline's step time.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn
    from torchvision.transforms import v2

    from resnet_lightning.data.augment import BatchMix, BatchPolicy, BatchRandomErasing
    from resnet_lightning.data.device import RandomCropFlip
    from resnet_lightning.module import ResNetClassifier

    pixels = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8)
    images, labels = torch.randn(128, 3, 32, 32), torch.arange(128) % 10
    generator = torch.Generator().manual_seed(0)
    crop, erasing, policy = RandomCropFlip(4), BatchRandomErasing(0.1, (32, 32), (125, 123, 114)), BatchPolicy(v2.TrivialAugmentWide())
    model = ResNetClassifier(arch="cifar_resnet20")
    average = AveragedModel(model, use_buffers=True, avg_fn=get_ema_avg_fn(0.999))
    average.update_parameters(model)
    mix = BatchMix(10, 0.2, 1.0)
    ops = {
        "crop + flip (the baseline's, for scale)": lambda k: crop(pixels, crop.draw(128, generator)),
        "MixUp 0.2 / CutMix 1.0 (one per batch)": lambda k: mix(images, labels, (0, 0, k, 0)),
        "EMA update (ResNet-20, buffers too)": lambda k: average.update_parameters(model),
        "random erasing 0.1 (draw + apply)": lambda k: erasing(pixels, erasing.draw(128, generator)),
        "TrivialAugmentWide per image (draw + apply)": lambda k: policy(pixels, policy.draw(128, generator)),
    }
    times: dict[str, list[float]] = {name: [] for name in ops}
    for k in range(repeats):
        for name, op in ops.items():
            start = time.perf_counter()
            op(k)
            times[name].append(time.perf_counter() - start)
    return [{"op": name, "ms": 1000 * median(seconds)} for name, seconds in times.items()]


def _tta_cost(repeats: int) -> dict[str, float]:
    """Seconds of an evaluation forward pass of a batch of 128, without and with flip TTA (alternating)."""
    from resnet_lightning.module import ResNetClassifier

    plain = ResNetClassifier(arch="cifar_resnet20").eval()
    tta = ResNetClassifier(arch="cifar_resnet20", tta_flip=True).eval()
    tta.load_state_dict(plain.state_dict())
    images = torch.randn(128, 3, 32, 32)
    times: dict[str, list[float]] = {"plain": [], "tta": []}
    with torch.no_grad():
        for model in (plain, tta):
            model._evaluate(images)  # warm-up
        for _ in range(repeats):
            for key, model in (("plain", plain), ("tta", tta)):
                start = time.perf_counter()
                model._evaluate(images)
                times[key].append(time.perf_counter() - start)
    ratios = [b / a for a, b in zip(times["plain"], times["tta"])]
    return {"plain_ms": 1000 * median(times["plain"]), "tta_ms": 1000 * median(times["tta"]), "ratio": median(ratios)}


def _accuracy(quick: bool) -> list[dict[str, Any]]:
    from resnet_lightning.cli import cli_main

    config = str(REPO_ROOT / "configs" / "digits.yaml")
    quiet_args = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.logger=false"]
    short = ["--trainer.max_epochs=2"] if quick else []
    rows = []
    for name, extra in ACCURACY_VARIANTS:
        with tempfile.TemporaryDirectory(prefix="bench-recipes-") as scratch:
            root = ["--trainer.default_root_dir", scratch]
            start = time.perf_counter()
            with quiet(Path(scratch) / "fit.log"):
                fit = cli_main(["fit", "--config", config, *extra, *short, *quiet_args, *root])
                seconds = time.perf_counter() - start
                metrics = {k: float(v) for k, v in fit.trainer.callback_metrics.items()}
                best = float(fit.trainer.checkpoint_callback.best_model_score)
                test = cli_main(["test", "--config", config, *extra, *short, *quiet_args, *root, "--ckpt_path", "best"])
            rows.append({
                "variant": name, "options": " ".join(extra) or "–", "best_val": best,
                "last_val": metrics.get("val/acc"), "last_val_raw": metrics.get("val/acc_raw"),
                "test": float(test.trainer.callback_metrics["test/acc"]), "fit_s": seconds,
            })
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.fixtures_data import write_cifar10

    rounds = args.rounds or (1 if args.quick else 5)
    steps = args.steps or (2 if args.quick else 8)
    result: dict[str, Any] = {"benchmark": "recipes", "config": {"part": args.part, "rounds": rounds, "steps": steps}}
    if args.part in ("cost", "all"):
        with tempfile.TemporaryDirectory(prefix="bench-recipes-") as scratch:
            write_cifar10(scratch)
            result["cost"] = _cost(Path(scratch), rounds, warmup=2, steps=steps)
    if args.part in ("accuracy", "all"):
        result["accuracy"] = _accuracy(args.quick)
    return result


def table(result: dict[str, Any]) -> str:
    parts = []
    if "cost" in result:
        parts.append(markdown_table(result["cost"]["rows"], {
            "variant": "CIFAR ResNet-20, batch 128, CPU", "step_ms": "ms/step (median)",
            "ratio": "step time / baseline's", "rounds": "per round",
        }))
        if "ops" in result["cost"]:
            ops = [dict(op, share=f"{op['share']:.1%}", within="yes" if op["share"] <= BUDGET - 1 else "**no**")
                   for op in result["cost"]["ops"]]
            parts.append(markdown_table(ops, {
                "op": "batch operation alone, batch of 128", "ms": "ms (median)", "share": "of the baseline's step",
                "within": f"within {BUDGET - 1:.0%}",
            }))
        tta = result["cost"]["tta"]
        parts.append(
            f"Test-time flip TTA: an evaluation batch of 128 takes {tta['tta_ms']:.0f} ms instead of "
            f"{tta['plain_ms']:.0f} ms ({tta['ratio']:.2f}x; it evaluates twice the images)."
        )
    if "accuracy" in result:
        parts.append(markdown_table(result["accuracy"], {
            "variant": "digits, ResNet-20, 15 epochs", "options": "options", "best_val": "best val/acc",
            "last_val_raw": "last val/acc_raw", "test": "test/acc (best ckpt)", "fit_s": "fit s",
        }))
    return "\n\n".join(parts)
