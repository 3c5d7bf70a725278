"""Benchmark 2, model parity: the project's ``resnet50`` against ``torchvision.models.resnet50``.

Forward+backward throughput on the same input with the same weights (torchvision's
state dict loads into ours), alternating the two models in one process, each
measurement a ``torch.utils.benchmark.Timer`` (which warms up and sets the thread
count). Peak memory of a training step is measured in a fresh process per model:
``ru_maxrss`` on CPU, ``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import current_rss_mb, markdown_table, median, peak_rss_mb, run_child, set_threads, speed_ratio

GOAL = 0.98
MODELS = ("resnet_lightning", "torchvision")


def build(which: str) -> nn.Module:
    """ResNet-50 at 1000 classes from this project (``which="resnet_lightning"``) or torchvision."""
    if which == "torchvision":
        import torchvision

        return torchvision.models.resnet50()
    from resnet_lightning import create_model

    return create_model("resnet50", num_classes=1000, in_channels=3)


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Forward, loss, backward (gradients dropped first, as ``zero_grad(set_to_none=True)``)."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()


def _inputs(batch: int, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(0, 1000, (batch,), generator=generator).to(device)
    return images, labels


def peak_memory(which: str, batch: int, size: int, device: str, threads: int) -> dict[str, float]:
    """Peak memory of two training steps of one model, in this (fresh) process; MiB."""
    set_threads(threads)
    torch.manual_seed(0)
    model = build(which).to(device).train()
    images, labels = _inputs(batch, size, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(2):
            train_step(model, images, labels)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {"peak_mb": peak / 2**20, "step_peak_mb": (peak - base) / 2**20}
    base = current_rss_mb()
    for _ in range(2):
        train_step(model, images, labels)
    peak = peak_rss_mb()
    return {"peak_mb": peak, "step_peak_mb": peak - base}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=None, help="default 16 (quick 2)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 128; quick 64)")
    parser.add_argument("--rounds", type=int, default=None, help="alternations (default 4; quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 2; quick 1)")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from torch.utils.benchmark import Timer  # imported late: it probes for a CUDA toolkit

    batch = args.batch or (2 if args.quick else 16)
    size = args.size or (64 if args.quick else 128)
    rounds = args.rounds or (1 if args.quick else 4)
    steps = args.steps or (1 if args.quick else 2)
    device, threads = args.device, torch.get_num_threads()
    images, labels = _inputs(batch, size, device)

    models = {which: build(which).to(device).train() for which in MODELS}
    models["resnet_lightning"].load_state_dict(models["torchvision"].state_dict())  # same weights, strict
    with torch.no_grad():
        models["resnet_lightning"].eval(), models["torchvision"].eval()
        difference = (models["resnet_lightning"](images) - models["torchvision"](images)).abs().max().item()
        models["resnet_lightning"].train(), models["torchvision"].train()

    seconds: dict[str, list[float]] = {which: [] for which in MODELS}
    for _ in range(rounds):
        for which in MODELS:  # alternating; each Timer warms up after the switch
            timer = Timer(
                "train_step(model, images, labels)",
                globals={"train_step": train_step, "model": models[which], "images": images, "labels": labels},
                num_threads=threads,
            )
            seconds[which].append(timer.timeit(steps).mean)
    del models

    rows = []
    for which in MODELS:
        memory = run_child("benchmarks.parity:peak_memory", which=which, batch=batch, size=size, device=device, threads=threads)
        model = build(which)
        rows.append({
            "model": "resnet_lightning resnet50" if which == "resnet_lightning" else "torchvision resnet50",
            "params": sum(p.numel() for p in model.parameters()),
            "img_s": batch / median(seconds[which]),
            "ms_step": 1000 * median(seconds[which]),
            "runs": ", ".join(f"{batch / s:.1f}" for s in seconds[which]),
            **memory,
        })
    ratio, ratios = speed_ratio(seconds["resnet_lightning"], seconds["torchvision"])
    memory_ratio = rows[0]["step_peak_mb"] / rows[1]["step_peak_mb"]
    return {
        "benchmark": "parity",
        "config": {"batch": batch, "size": size, "rounds": rounds, "steps": steps, "device": device},
        "rows": rows,
        "raw_seconds": seconds,
        "summary": {
            "ratio": ratio,
            "per_round_ratios": ratios,
            "ratio_of_medians": rows[0]["img_s"] / rows[1]["img_s"],
            "step_memory_ratio": memory_ratio,
            "max_abs_logit_difference": difference,
            "goal": GOAL,
            "meets_goal": ratio >= GOAL,
        },
    }


def table(result: dict[str, Any]) -> str:
    c, s = result["config"], result["summary"]
    body = markdown_table(result["rows"], {
        "model": f"forward+backward, batch {c['batch']} at {c['size']}x{c['size']}, {c['device']}",
        "params": "parameters", "img_s": "img/s (median)", "ms_step": "ms/step", "runs": "img/s per round",
        "peak_mb": "peak MiB (process)", "step_peak_mb": "MiB used by the step",
    })
    verdict = "meets" if s["meets_goal"] else "misses"
    return (
        f"{body}\n\nThroughput ratio ours/torchvision: **{s['ratio']:.3f}**, the median of the per-round ratios "
        f"({', '.join(f'{r:.3f}' for r in s['per_round_ratios'])}; ratio of the medians above: "
        f"{s['ratio_of_medians']:.3f}); goal >= {s['goal']}: {verdict} it. "
        f"Step memory ratio: {s['step_memory_ratio']:.3f}. Same weights give logits equal to within "
        f"{s['max_abs_logit_difference']:.1e}."
    )
