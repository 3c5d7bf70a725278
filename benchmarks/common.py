"""What every benchmark shares: the machine description, timing, child processes, tables.

Speed is measured here and never asserted in tests. Every result carries the
machine it came from (CPU model, cores, threads, versions, date and the load
average before and after), because on a shared machine the load average is the
first thing to read before trusting a number.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"  # tracked: written only with --update-readme
REPO_ROOT = BENCH_DIR.parent
OUTPUT_DIR = Path("benchmarks-out")  # in the working directory; git-ignored


def cpu_model() -> str:
    """The CPU's marketing name from ``/proc/cpuinfo``, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """The machine, software versions and current load, for the results' provenance."""
    import lightning
    import torchvision

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": lightning.__version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def set_threads(threads: int | None) -> int:
    """Use ``threads`` intra-op threads (None: every core this process may run on)."""
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def synchronize(device: str | torch.device) -> None:
    """Wait for queued kernels, so a host clock reading covers them (no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def now(device: str | torch.device = "cpu") -> float:
    """``time.perf_counter()`` after the device has finished its queued work."""
    synchronize(device)
    return time.perf_counter()


def median(values: Sequence[float]) -> float:
    """The median (``nan`` for no values)."""
    return statistics.median(values) if values else float("nan")


def speed_ratio(ours: Sequence[float], baseline: Sequence[float]) -> tuple[float, list[float]]:
    """Throughput of ours over the baseline's, from the times of alternating rounds.

    The median of the per-round ratios: each round times both sides back to back, so
    its ratio cancels the slow drift of a shared machine's load, which a ratio of the
    two sides' medians does not (that one is reported beside it).

    Returns:
        ``(median ratio, per-round ratios)``; above 1 means ours is faster.
    """
    ratios = [theirs / mine for mine, theirs in zip(ours, baseline)]
    return median(ratios), ratios


def current_rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux ``/proc``; ``nan`` elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    On Linux ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` survives ``exec``, so
    a child started by a process holding 2 GiB would report at least 2 GiB.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except (OSError, ValueError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def run_child(function: str, timeout: float = 600, **kwargs: Any) -> dict[str, Any]:
    """Run ``"module:function"(**kwargs)`` in a fresh Python process and return its result.

    A fresh process per measurement is how peak memory is measured on CPU:
    the peak resident memory is a per-process high-water mark that never goes down, so two
    models measured in one process would read the larger one's peak twice.
    """
    command = [sys.executable, "-m", "benchmarks.child", function, json.dumps(kwargs)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {function}({kwargs}) failed with exit code {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown_table(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    """A Markdown table of ``rows`` with ``columns`` (key -> header); floats shown briefly."""

    def cell(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            if value != value:  # nan
                return "–"
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(key)) for key in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    """One line naming the machine a table came from."""
    gpu = f", GPU {machine['gpu']}" if "gpu" in machine else ""
    load = machine.get("loadavg_after", machine["loadavg"])
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['torch_threads']} torch threads{gpu}; "
        f"torch {machine['torch']}, torchvision {machine['torchvision']}, lightning {machine['lightning']}, "
        f"Python {machine['python']}; {machine['date']}; load average (1, 5, 15 min) "
        f"{tuple(machine['loadavg'])} before, {tuple(load)} after"
    )


def save_json(result: dict[str, Any], directory: Path) -> Path:
    """Write ``result`` to ``directory/<benchmark>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result['benchmark']}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def output_dir(output: Path | None, quick: bool = False, update_readme: bool = False) -> Path:
    """Where a run's results go, as an absolute path.

    Args:
        output: the directory given (``--output``); used as it is.
        quick: a ``--quick`` run: by default its results go to a ``quick/`` subdirectory,
            so they never replace a full run's.
        update_readme: ``--update-readme``: by default the tracked ``benchmarks/results/``.
    """
    if output is None:
        output = RESULTS_DIR if update_readme else OUTPUT_DIR / "quick" if quick else OUTPUT_DIR
    return output.resolve()


def display_path(path: Path) -> str:
    """``path`` relative to the working directory where it lies below it, else absolute."""
    return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
