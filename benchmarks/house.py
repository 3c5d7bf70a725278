"""Benchmark 8, house: files a fit passes through before its first step, and start-up time, two trees side by side.

**Path to the first step.** One ``resnet-lightning fit --config configs/digits.yaml
--trainer.max_epochs 1`` per tree runs under ``sys.setprofile`` (``benchmarks/house_child.py``)
until the first call of a ``training_step``: the package's files in which a function ran
(and those only imported), and the distinct cross-file hops between them: a call from a
function of one file to one of another, directly or through a library (Lightning calling a
hook, jsonargparse building a class, ``nn.Module.__call__`` running ``forward``).

**Start-up.** The wall time of ``resnet-lightning fit --help`` and of the whole one-epoch
digits fit (in a fresh temporary folder, ``WANDB_MODE=offline``), each a fresh process,
the two trees alternating (before, after, before, after, ...) so that the machine's load
hits both; the ratio is the median of the per-round after/before ratios.

The "before" tree is a checkout given by ``--before`` (default ``/tmp/before``), put first on
the child's ``PYTHONPATH`` (its plugins' source folders too); the "after" tree is this working
copy. Each tree runs its own ``[project.scripts]`` entry and its own ``configs/digits.yaml``,
and every child says which ``resnet_lightning`` it imported: a run from the wrong tree is an
error, not a number. Without a "before" checkout only the working copy is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT, markdown_table, median

CHILD = Path(__file__).resolve().parent / "house_child.py"
DEFAULT_BEFORE = Path("/tmp/before")
TREE_MARK, TRACE_MARK = "house_child: resnet_lightning from ", "house_child: trace "
FIT = ["fit", "--config", "{tree}/configs/digits.yaml", "--trainer.max_epochs", "1"]
COMMANDS = {"fit --help": ["fit", "--help"], "fit --config configs/digits.yaml --trainer.max_epochs 1": FIT}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--before", type=Path, default=DEFAULT_BEFORE, help="checkout of the tree to compare with (default /tmp/before)")
    parser.add_argument("--rounds", type=int, default=None, help="timed runs of each command per tree (default 3; --quick 1)")


def _git(tree: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(tree), *args], check=False, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "?"


def _tree(path: Path) -> dict[str, Any]:
    """A tree to measure: where it is, its commit, its console-script entry."""
    path = path.resolve()
    scripts = tomllib.loads((path / "pyproject.toml").read_text())["project"]["scripts"]
    dirty = _git(path, "status", "--porcelain", "--untracked-files=no", "--", "resnet_lightning", "configs")
    return {
        "path": str(path),
        "commit": _git(path, "rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty not in ("", "?") else ""),
        "entry": scripts["resnet-lightning"],
    }


def _child(tree: dict[str, Any], mode: str, argv: list[str], timeout: float = 900) -> dict[str, Any]:
    """Run the tree's ``resnet-lightning ARGV`` in a fresh process and temporary folder; time it."""
    root = Path(tree["path"])
    plugins = sorted(str(p) for p in (root / "plugins").glob("*") if (p / "pyproject.toml").exists())
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": os.pathsep.join(
        [str(root), *plugins, *filter(None, [os.environ.get("PYTHONPATH")])])}
    argv = [arg.format(tree=root) for arg in argv]
    with tempfile.TemporaryDirectory(prefix="rl-bench-house-") as folder:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(CHILD), mode, str(root), tree["entry"], *argv], cwd=folder, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            seconds = time.perf_counter() - start
            try:  # what the run left behind (a W&B service, loader workers): this group is ours alone
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    imported = next((line[len(TREE_MARK):] for line in stderr.splitlines() if line.startswith(TREE_MARK)), "")
    if imported and not imported.startswith(str(root / "resnet_lightning") + os.sep):
        raise RuntimeError(f"the child for {root} imported resnet_lightning from {imported}, not from that tree")
    result = {"seconds": seconds, "exit_code": process.returncode, "imported": imported}
    if process.returncode != 0:
        result["error"] = stderr.strip().splitlines()[-1] if stderr.strip() else "(no output)"
    trace = [line[len(TRACE_MARK):] for line in stdout.splitlines() if line.startswith(TRACE_MARK)]
    if trace:
        result["trace"] = json.loads(trace[-1])
    return result


def _path_to_first_step(tree: dict[str, Any]) -> dict[str, Any]:
    run = _child(tree, "trace", FIT)
    trace = run.get("trace")
    if trace is None or not trace["reached_training_step"]:
        return {"error": run.get("error", "the fit ended before any training_step"), **(trace or {})}
    direct, through = trace["call_edges"], trace["call_edges_through_libraries"]
    return {
        **trace,
        "n_files_run": len(trace["files_with_functions_run"]),
        "n_files_imported": len(trace["files"]),
        "n_hops": len(direct) + len(through),
        "n_direct": len(direct),
        "n_through": len(through),
        "n_imports": len(trace["import_edges"]),
    }


def _times(trees: dict[str, dict[str, Any]], rounds: int) -> dict[str, dict[str, list[Any]]]:
    """``{command: {side: [seconds or an error per round]}}``, the sides alternating within each round."""
    times: dict[str, dict[str, list[Any]]] = {command: {side: [] for side in trees} for command in COMMANDS}
    for side, tree in trees.items():  # warm-up: byte-compiles the tree, checks it runs from where it should
        _child(tree, "run", COMMANDS["fit --help"])
    for round_ in range(rounds):
        for command, argv in COMMANDS.items():
            for side, tree in trees.items():
                run = _child(tree, "run", argv)
                times[command][side].append(round(run["seconds"], 2) if run["exit_code"] == 0 else f"failed: {run['error']}")
                print(f"  round {round_ + 1}/{rounds}, {command}, {side}: {times[command][side][-1]}", flush=True)
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    trees = {"after": _tree(REPO_ROOT)}
    if args.before.exists():
        trees = {"before": _tree(args.before), **trees}
    else:
        print(f"  no tree at {args.before}: measuring the working copy alone", flush=True)
    paths = {side: _path_to_first_step(tree) for side, tree in trees.items()}
    times = _times(trees, args.rounds or (1 if args.quick else 3))
    return {"benchmark": "house", "trees": trees, "path_to_first_step": paths, "times": times}


def _ratio(after: list[Any], before: list[Any]) -> float | None:
    pairs = [a / b for a, b in zip(after, before) if isinstance(a, float) and isinstance(b, float)]
    return median(pairs) if pairs else None


def table(result: dict[str, Any]) -> str:
    sides = list(result["trees"])
    paths, rows = result["path_to_first_step"], []
    for key, what in [
        ("n_files_run", "project files in which a function ran, before the first training_step"),
        ("n_hops", "cross-file hops (distinct caller file -> callee file)"),
        ("n_direct", "... of which direct calls"),
        ("n_through", "... of which through a library (Lightning, jsonargparse, torch)"),
        ("n_files_imported", "project files imported"),
        ("n_imports", "cross-file imports"),
    ]:
        row = {"what": what, **{side: paths[side].get(key, paths[side].get("error")) for side in sides}}
        if len(sides) == 2 and all(isinstance(row[side], int) and row[side] for side in sides):
            row["ratio"] = row["after"] / row["before"]
        rows.append(row)
    for command, by_side in result["times"].items():
        row = {"what": f"`resnet-lightning {command}`, s (median)"}
        for side in sides:
            seconds = [t for t in by_side[side] if isinstance(t, float)]
            failed = len(by_side[side]) - len(seconds)
            row[side] = median(seconds) if seconds else None
            row[f"{side}_rounds"] = ", ".join(f"{t:.1f}" for t in seconds) + (f" ({failed} failed)" if failed else "")
        if len(sides) == 2:
            row["ratio"] = _ratio(by_side["after"], by_side["before"])
        rows.append(row)
    columns = {"what": "measure", **{side: side for side in sides}}
    if len(sides) == 2:
        columns["ratio"] = "after/before"
    columns.update({f"{side}_rounds": f"{side}, per round (s)" for side in sides})
    trees = "; ".join(f"{side}: `{tree['path']}` at {tree['commit']} (`{tree['entry']}`)" for side, tree in result["trees"].items())
    failures = sorted({t for by_side in result["times"].values() for runs in by_side.values() for t in runs if isinstance(t, str)})
    notes = "".join(f"\n\n{side}'s trace failed: {paths[side]['error']}" for side in sides if "error" in paths[side])
    notes += "".join(f"\n\nA run {failure}" for failure in failures)
    return f"{markdown_table(rows, columns)}\n\nTrees: {trees}. The time ratio is the median of the per-round ratios.{notes}"
