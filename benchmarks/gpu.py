"""Benchmark 5, GPU: ResNet-50 training throughput with bf16-mixed, channels_last and torch.compile.

``python -m benchmarks gpu --size 224 --batch 256 --device cuda`` on a GPU; by default
it runs on the CPU at 64x64, batch 8, compile off, so that it is exercised anywhere.
Each configuration trains twice, alternating: through ``resnet-lightning fit`` (the
real CLI: ``--trainer.precision bf16-mixed``, ``--model.channels_last``,
``--model.compile``; synthetic batches generated once on the device) and through a
plain loop over the same batches with ``torch.autocast(bfloat16)``. Throughput is
also given as a fraction of the device's dense bf16 peak, counting a training image
as 3 forward passes (forward, and backward at twice the forward's cost) of 2 FLOPs
per multiply-accumulate: 3 x 2 x 4.09 GMACs = 24.5 GFLOP at 224x224.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from benchmarks.common import markdown_table, median, speed_ratio
from benchmarks.synthetic import SyntheticDataModule, cli_fit, hand_loop

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, in TFLOP/s;
# the first name contained in torch.cuda.get_device_name() wins.
PEAK_BF16_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,  # SXM
    "H200": 989.0,
    "GH200": 989.0,
    "B200": 2250.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
}
ANCHORS = (
    "NVIDIA's PyTorch ResNet-50 v1.5 reference: about 2,470 img/s on one A100 with AMP; "
    "NVIDIA's MLPerf submission: about 7,000 img/s per H100; our goal: above 3,500 img/s on one H100 "
    "from the framework's CLI path"
)


def peak_tflops(device: str) -> float | None:
    """The device's dense bf16 peak, if it is a GPU this table knows."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)


def flops_per_training_image(size: int) -> float:
    """3 x 2 x forward MACs of ResNet-50 at ``size`` (counted by torch's FlopCounterMode)."""
    from resnet_lightning import count_macs, create_model

    return 3 * 2 * count_macs(create_model("resnet50", num_classes=1000, in_channels=3), (1, 3, size, size))


def framework(size: int, batch: int, warmup: int, steps: int, device: str, channels_last: bool, compile: bool) -> float:
    """Seconds of ``steps`` timed steps of ``resnet-lightning fit`` (bf16-mixed, synthetic device data)."""
    data = {"train_batches": warmup + steps, "val_batches": 0, "batch_size": batch, "image_size": size,
            "num_classes": 1000, "device": device}
    args = [
        "--data", "benchmarks.synthetic.SyntheticDataModule", *(f"--data.{k}={v}" for k, v in data.items()),
        "--model.arch=resnet50",
        f"--model.channels_last={str(channels_last).lower()}",
        f"--model.compile={str(compile).lower()}",
        "--trainer.precision=bf16-mixed",
        f"--trainer.accelerator={'gpu' if device.startswith('cuda') else 'cpu'}",
        "--trainer.devices=1",
        "--trainer.max_epochs=1",
        "--seed_everything=0",
        "--trainer.callbacks+=benchmarks.synthetic.StepTimer",
        f"--trainer.callbacks.warmup={warmup}",
        f"--trainer.callbacks.steps={steps}",
    ]
    if device.startswith("cuda"):
        args.append("--trainer.benchmark=true")  # cudnn autotuning, as configs/trainer/imagenet_ddp_bf16.yaml
    timer, _ = cli_fit(args)
    return timer.seconds


def plain(size: int, batch: int, warmup: int, steps: int, device: str, channels_last: bool, compile: bool) -> float:
    """The same model and batches in a plain loop under ``torch.autocast(bfloat16)``."""
    from resnet_lightning import create_model

    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = device.startswith("cuda")
    model = create_model("resnet50", num_classes=1000, in_channels=3).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    loader = SyntheticDataModule(warmup + steps, 0, batch, size, 1000, 3, device=device).train_dataloader()
    return hand_loop(model, loader, warmup, steps, device, autocast=torch.bfloat16, channels_last=channels_last)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--size", type=int, default=None, help="image side (default: 224 on cuda, 64 on cpu; quick 32)")
    parser.add_argument("--batch", type=int, default=None, help="default: 256 on cuda, 8 on cpu (quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default: 20 on cuda, 2 on cpu)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 100 on cuda, 5 on cpu)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternations of framework and loop per configuration (default: 1 on cuda, 2 on cpu)")
    parser.add_argument("--compile", choices=["off", "on", "both"], default=None,
                        help="torch.compile (default: both on cuda; off on cpu, where compiling takes minutes)")
    parser.add_argument("--channels-last", choices=["off", "on", "both"], default="both")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak (default: known GPUs)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    cuda = args.device.startswith("cuda")
    size = args.size or (32 if args.quick else 224 if cuda else 64)
    batch = args.batch or (2 if args.quick else 256 if cuda else 8)
    warmup = args.warmup or (1 if args.quick else 20 if cuda else 2)
    steps = args.steps or (1 if args.quick else 100 if cuda else 5)
    rounds = args.rounds or (1 if args.quick or cuda else 2)
    choice = {"off": [False], "on": [True], "both": [False, True]}
    compiles = choice[args.compile or ("both" if cuda else "off")]
    layouts = choice[args.channels_last]
    peak = args.peak_tflops or peak_tflops(args.device)
    flops = flops_per_training_image(size)

    rows = []
    for compile in compiles:
        for channels_last in layouts:
            times: dict[str, list[float]] = {"framework": [], "loop": []}
            for _ in range(rounds):
                times["framework"].append(framework(size, batch, warmup, steps, args.device, channels_last, compile))
                times["loop"].append(plain(size, batch, warmup, steps, args.device, channels_last, compile))
            for path, seconds in times.items():
                img_s = steps * batch / median(seconds)
                rows.append({
                    "path": "resnet-lightning fit" if path == "framework" else "plain loop (autocast)",
                    "channels_last": channels_last,
                    "compile": compile,
                    "img_s": img_s,
                    "ms_step": 1000 * median(seconds) / steps,
                    "tflops": img_s * flops / 1e12,
                    "peak_fraction": img_s * flops / 1e12 / peak if peak else None,
                    "runs": ", ".join(f"{steps * batch / t:.1f}" for t in seconds),
                })
            rows[-2]["vs_loop"] = speed_ratio(times["framework"], times["loop"])[0]
    return {
        "benchmark": "gpu",
        "config": {"device": args.device, "size": size, "batch": batch, "warmup": warmup, "steps": steps,
                   "rounds": rounds, "precision": "bf16-mixed", "gflop_per_training_image": flops / 1e9,
                   "peak_bf16_tflops": peak},
        "rows": rows,
        "anchors": ANCHORS,
    }


def table(result: dict[str, Any]) -> str:
    c = result["config"]
    body = markdown_table(result["rows"], {
        "path": f"ResNet-50 {c['size']}x{c['size']}, batch {c['batch']}, bf16-mixed, {c['device']}",
        "channels_last": "channels_last", "compile": "compile", "img_s": "img/s", "ms_step": "ms/step",
        "tflops": "TFLOP/s", "peak_fraction": "fraction of bf16 peak", "vs_loop": "framework/loop (median of rounds)",
        "runs": "img/s per round",
    })
    peak = f"{c['peak_bf16_tflops']:g} TFLOP/s" if c["peak_bf16_tflops"] else "unknown for this device (pass --peak-tflops)"
    return (
        f"{body}\n\n{c['gflop_per_training_image']:.2f} GFLOP per training image at {c['size']}x{c['size']} "
        f"(3 x 2 x forward MACs); dense bf16 peak: {peak}. Anchors: {result['anchors']}."
    )

