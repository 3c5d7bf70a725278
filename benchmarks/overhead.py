"""Benchmark 1, framework overhead: a ``resnet-lightning fit`` against a hand-written loop.

Both train the same CIFAR ResNet-20 (10 classes, 3x32x32, batch 128, fp32) on the
same in-memory images with the same SGD, alternating in one process (framework,
loop, framework, loop, ...). The framework runs through the real CLI with the
defaults a user gets: progress bar, default logger (CSV without TensorBoard),
train/val top-1 and top-5 accuracy from torchmetrics, ``log_every_n_steps=50``,
the CLI's ModelCheckpoint and RNG-state callbacks. Each side's clock covers the
same whole iterations after the same warm-up (see ``StepTimer``).

A second, small measurement explains the ratio: the framework's fixed cost per
step, seen on a model so small that the step is almost all overhead, with the
progress bar or the logger switched off to show their shares.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from benchmarks.common import markdown_table, median, speed_ratio
from benchmarks.synthetic import SyntheticDataModule, cli_fit, hand_loop

GOAL = 0.97


def _data_args(data: dict[str, Any]) -> list[str]:
    return ["--data", "benchmarks.synthetic.SyntheticDataModule", *(f"--data.{k}={v}" for k, v in data.items())]


def framework_fit(
    arch: str, arch_kwargs: dict, data: dict, warmup: int, steps: int, extra: list[str]
) -> tuple[float, list[float], float]:
    """``resnet-lightning fit`` for one epoch.

    Returns:
        Seconds of the timed steps, each timed step's seconds, seconds of the whole call.
    """
    args = [
        *_data_args(data),
        f"--model.arch={arch}",
        f"--model.arch_kwargs={json.dumps(arch_kwargs)}",
        "--trainer.max_epochs=1",
        "--trainer.accelerator=cpu",
        "--seed_everything=0",
        "--trainer.callbacks+=benchmarks.synthetic.StepTimer",
        f"--trainer.callbacks.warmup={warmup}",
        f"--trainer.callbacks.steps={steps}",
        *extra,
    ]
    start = time.perf_counter()
    timer, _ = cli_fit(args)
    return timer.seconds, timer.step_seconds, time.perf_counter() - start


def loop_fit(arch: str, arch_kwargs: dict, data: dict, warmup: int, steps: int) -> tuple[float, list[float]]:
    """The hand-written loop over the same DataModule's loader and the same model.

    Returns:
        Seconds of the timed steps, and each timed step's seconds.
    """
    from resnet_lightning import create_model

    torch.manual_seed(0)
    datamodule = SyntheticDataModule(**data)
    model = create_model(arch, num_classes=datamodule.num_classes, in_channels=datamodule.in_channels, **arch_kwargs)
    step_seconds: list[float] = []
    seconds = hand_loop(model, datamodule.train_dataloader(), warmup, steps, step_seconds=step_seconds)
    return seconds, step_seconds


def compare(arch, arch_kwargs, data, warmup, steps, rounds, variants: dict[str, list[str]]) -> dict[str, Any]:
    """Alternate the loop and each framework variant (extra CLI arguments), ``rounds`` times.

    Returns:
        ``timed``: {name: [seconds of the timed steps, per round]}; ``steps``: {name: [seconds
        of every single timed step, all rounds]}; ``call``: {variant: [seconds of the whole
        CLI call: parsing, start-up, sanity check, validation, checkpoint]}.
    """
    names = ["loop", *variants]
    timed: dict[str, list[float]] = {name: [] for name in names}
    single: dict[str, list[float]] = {name: [] for name in names}
    call: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for i, (name, extra) in enumerate(variants.items()):
            seconds, step_seconds, total = framework_fit(arch, arch_kwargs, data, warmup, steps, extra)
            timed[name].append(seconds)
            single[name] += step_seconds
            call[name].append(total)
            if i == 0:
                seconds, step_seconds = loop_fit(arch, arch_kwargs, data, warmup, steps)
                timed["loop"].append(seconds)
                single["loop"] += step_seconds
    return {"timed": timed, "steps": single, "call": call}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=None, help="alternations of framework and loop (default 5; quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default 8; quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per run (default 2; quick 1)")
    parser.add_argument("--batch", type=int, default=128)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds = args.rounds or (1 if args.quick else 5)
    steps = args.steps or (2 if args.quick else 8)
    warmup = args.warmup or (1 if args.quick else 2)
    batch = args.batch

    # Main comparison: CIFAR ResNet-20, batch 128, CLI defaults.
    data = {"train_batches": warmup + steps, "val_batches": 2, "batch_size": batch, "image_size": 32}
    measured = compare("cifar_resnet20", {}, data, warmup, steps, rounds, {"framework": []})
    main = measured["timed"]
    images = steps * batch
    rows = []
    for name in ("framework", "loop"):
        seconds = median(main[name])
        rows.append({
            "what": "resnet-lightning fit (CLI defaults)" if name == "framework" else "hand-written loop",
            "model": f"cifar_resnet20, 3x32x32, batch {batch}, fp32",
            "img_s": images / seconds,
            "ms_step": 1000 * seconds / steps,
            "runs": ", ".join(f"{images / s:.0f}" for s in main[name]),
            "median_step_ms": 1000 * median(measured["steps"][name]),
        })
    ratio, ratios = speed_ratio(main["framework"], main["loop"])

    # Fixed cost per step, on a model small enough that the step is mostly overhead.
    # Its per-step differences are a few ms against noise of about 1 ms: many steps, 3 rounds.
    tiny_steps, tiny_warmup = (20, 5) if args.quick else (300, 10)
    tiny_data = {"train_batches": tiny_warmup + tiny_steps, "val_batches": 1, "batch_size": 32, "image_size": 8}
    variants = {
        "defaults": [],
        "no progress bar": ["--trainer.enable_progress_bar=false"],
        "no logger": ["--trainer.logger=false"],
        "no progress bar, no logger": ["--trainer.enable_progress_bar=false", "--trainer.logger=false"],
    }
    tiny_measured = compare("cifar_resnet", {"depth": 8}, tiny_data, tiny_warmup, tiny_steps, 1 if args.quick else 3, variants)
    tiny = tiny_measured["timed"]
    loop_ms = 1000 * median(tiny["loop"]) / tiny_steps
    loop_step_ms = 1000 * median(tiny_measured["steps"]["loop"])
    breakdown = []
    for name, seconds in tiny.items():
        ms, step_ms = 1000 * median(seconds) / tiny_steps, 1000 * median(tiny_measured["steps"][name])
        breakdown.append({
            "what": "hand-written loop" if name == "loop" else f"framework, {name}",
            "ms_step": ms,
            "overhead_ms": None if name == "loop" else ms - loop_ms,
            "median_step_ms": step_ms,
            "median_overhead_ms": None if name == "loop" else step_ms - loop_step_ms,
        })
    return {
        "benchmark": "overhead",
        "config": {"arch": "cifar_resnet20", "batch": batch, "warmup": warmup, "steps": steps, "rounds": rounds,
                   "tiny": {"arch": "cifar_resnet", "depth": 8, "batch": 32, "image_size": 8, "steps": tiny_steps}},
        "rows": rows,
        "breakdown": breakdown,
        "raw_seconds": {"main": main, "tiny": tiny},
        "summary": {
            "ratio": ratio,
            "per_round_ratios": ratios,
            "ratio_of_medians": rows[0]["img_s"] / rows[1]["img_s"],
            "goal": GOAL,
            "meets_goal": ratio >= GOAL,
            "framework_call_seconds": median(measured["call"]["framework"]),
            "median_step_ratio": rows[1]["median_step_ms"] / rows[0]["median_step_ms"],
        },
    }


def table(result: dict[str, Any]) -> str:
    s = result["summary"]
    main = markdown_table(result["rows"], {
        "what": "training", "model": "model", "img_s": "img/s (median of rounds)", "ms_step": "ms/step",
        "runs": "img/s per round", "median_step_ms": "median single step, ms",
    })
    tiny = markdown_table(result["breakdown"], {
        "what": "tiny model (cifar_resnet depth 8, 8x8, batch 32)", "ms_step": "ms/step (median of rounds)",
        "overhead_ms": "framework ms/step", "median_step_ms": "median single step, ms",
        "median_overhead_ms": "framework ms (median step)",
    })
    verdict = "meets" if s["meets_goal"] else "misses"
    return (
        f"{main}\n\nThroughput ratio framework/loop: **{s['ratio']:.3f}**, the median of the per-round ratios "
        f"({', '.join(f'{r:.3f}' for r in s['per_round_ratios'])}; ratio of the medians above: "
        f"{s['ratio_of_medians']:.3f}); goal >= {s['goal']}: {verdict} it. "
        f"The whole `fit` call (CLI parsing, start-up, sanity check, validation, checkpoint) took "
        f"{s['framework_call_seconds']:.1f} s (median). Median single steps, pooled over all rounds "
        f"(robust to bursts of load, blind to costs paid every N steps): ratio {s['median_step_ratio']:.3f}."
        f"\n\n{tiny}"
    )
