"""Benchmark 4, scaling: time per training step and peak memory as depth and batch grow.

CIFAR ResNet-20 -> 56 -> 110 -> 1202 at batch 32, then ResNet-20 at batch 16 .. 256,
on 3x32x32 inputs with SGD. Each point runs in a fresh process, so its peak
resident memory (``ru_maxrss``) is its own; "step MiB" is that peak minus the
memory held before the first step (libraries, weights, input), i.e. what the
activations, gradients and optimizer state add. Saves a plot beside this file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import BENCH_DIR, current_rss_mb, markdown_table, now, peak_rss_mb, run_child, set_threads

PLOT = BENCH_DIR / "scaling.png"


def step_time(depth: int, batch: int, warmup: int, steps: int, threads: int, device: str = "cpu") -> dict[str, float]:
    """One configuration, in this (fresh) process: seconds per step and memory in MiB."""
    from resnet_lightning import count_macs, create_model

    set_threads(threads)
    torch.manual_seed(0)
    model = create_model("cifar_resnet", depth=depth, num_classes=10, in_channels=3).to(device).train()
    macs = count_macs(model, (1, 3, 32, 32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() / 2**20 if device.startswith("cuda") else current_rss_mb()
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            start = now(device)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = (now(device) - start) / steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else peak_rss_mb()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "gmacs": macs / 1e9,
        "ms_step": 1000 * seconds,
        "img_s": batch / seconds,
        "peak_mb": peak,
        "step_mb": peak - base,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--depths", type=int, nargs="+", default=None, help="default 20 56 110 1202 (quick 20 56)")
    parser.add_argument("--depth-batch", type=int, default=None, help="batch of the depth sweep (default 32; quick 4)")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default 16 32 64 128 256 (quick 4 8)")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> dict[str, Any]:
    depths = args.depths or ([20, 56] if args.quick else [20, 56, 110, 1202])
    depth_batch = args.depth_batch or (4 if args.quick else 32)
    batches = args.batches or ([4, 8] if args.quick else [16, 32, 64, 128, 256])
    threads = torch.get_num_threads()
    rows, measured = [], {}
    for sweep, points in (("depth", [(d, depth_batch) for d in depths]), ("batch", [(20, b) for b in batches])):
        for depth, batch in points:
            if (depth, batch) not in measured:  # ResNet-20 at the depth sweep's batch is in both sweeps
                # ResNet-1202 takes seconds per step on a CPU: two timed steps after one warm-up.
                steps = 1 if args.quick else 2 if depth >= 1000 else 3
                started = time.perf_counter()
                point = run_child("benchmarks.scaling:step_time", depth=depth, batch=batch, warmup=1, steps=steps,
                                  threads=threads, device=args.device)
                measured[depth, batch] = {"steps": steps, **point, "wall_s": time.perf_counter() - started}
            rows.append({"sweep": sweep, "model": f"cifar_resnet{depth}", "depth": depth, "batch": batch,
                         **measured[depth, batch]})
    plot = PLOT if args.update_readme else Path(args.output) / "scaling.png"
    save_plot(rows, plot, args.device)
    return {
        "benchmark": "scaling",
        "config": {"depths": depths, "depth_batch": depth_batch, "batches": batches, "device": args.device},
        "rows": rows,
        "plot": str(plot.relative_to(BENCH_DIR) if plot.is_relative_to(BENCH_DIR) else plot),
    }


def save_plot(rows: list[dict[str, Any]], path: Path, device: str) -> None:
    """Two panels, depth and batch: ms/step (left axis) and step memory (right axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    def log_axis(axis) -> None:
        # Log-log: a cost linear in depth or batch is a line of slope 1.
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for ax, sweep in zip(axes, ("depth", "batch")):
        points = [r for r in rows if r["sweep"] == sweep]
        if not points:
            continue
        x = [r[sweep] for r in points]
        time_line = ax.plot(x, [r["ms_step"] for r in points], "o-", color="tab:blue", label="ms per training step")
        ax.set_xscale("log")
        ax.set_yscale("log")
        log_axis(ax.yaxis)
        ax.set_xticks(x, [str(v) for v in x])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"depth (CIFAR ResNet, batch {points[0]['batch']})" if sweep == "depth" else "batch (CIFAR ResNet-20)")
        ax.set_ylabel("ms per training step", color="tab:blue")
        twin = ax.twinx()
        memory_line = twin.plot(x, [r["step_mb"] for r in points], "s--", color="tab:red", label="MiB added by training")
        twin.set_yscale("log")
        log_axis(twin.yaxis)
        twin.set_ylabel("MiB added by training (peak RSS - before)", color="tab:red")
        ax.legend(handles=time_line + memory_line, loc="upper left")
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"Scaling of a training step (SGD, 3x32x32, {device})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict[str, Any]) -> str:
    body = markdown_table(result["rows"], {
        "model": "model", "batch": "batch", "params": "parameters", "gmacs": "GMACs/img (fwd)",
        "ms_step": "ms/step", "img_s": "img/s", "step_mb": "MiB added by training", "peak_mb": "peak MiB (process)",
        "steps": "timed steps",
    })
    return f"{body}\n\n![scaling]({result['plot']})"
