"""``python -m benchmarks [all|overhead|parity|data|scaling|gpu|recipes|search|house|report] [--quick] [--threads N] [--output DIR] [--update-readme]``.

With no name (or ``all``) it runs the CPU suite, prints a Markdown table per
benchmark and writes ``<name>.json`` into ``--output`` (default
``./benchmarks-out/``; ``--quick``, a tiny version of each that checks it runs and
measures nothing: ``./benchmarks-out/quick/``). Tracked files are left alone:
``--update-readme`` writes ``benchmarks/results/<name>.json`` instead and rewrites
that benchmark's section of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from benchmarks import BENCHMARKS
from benchmarks.common import display_path, machine_info, output_dir, save_json, set_threads


def _module(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def _common(suppress: bool) -> argparse.ArgumentParser:
    # On the subcommands the defaults are suppressed, so `--quick overhead` keeps its --quick.
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", default=default(False), help="tiny sizes: checks that it runs, measures nothing")
    common.add_argument("--threads", type=int, default=default(None), help="torch intra-op threads (default: all cores)")
    common.add_argument("--output", type=Path, default=default(None), metavar="DIR",
                        help="where the results go (default ./benchmarks-out, with --quick ./benchmarks-out/quick)")
    common.add_argument("--update-readme", action="store_true", default=default(False),
                        help="write the tracked files instead: benchmarks/results/<name>.json and benchmarks/README.md's tables")
    # Before --output and --update-readme: --results DIR was --output, --no-readme is now the default.
    common.add_argument("--results", type=Path, dest="output", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--no-readme", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return common


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1], parents=[_common(False)])
    commands = parser.add_subparsers(dest="name", metavar="{all," + ",".join(BENCHMARKS) + "}")
    commands.add_parser("all", parents=[_common(True)], help="the whole CPU suite (the default)")
    for name in BENCHMARKS:
        module = _module(name)
        sub = commands.add_parser(name, parents=[_common(True)], help=module.__doc__.splitlines()[0])
        module.add_arguments(sub)
    return parser


def run_one(name: str, args: argparse.Namespace) -> dict:
    """Run benchmark ``name`` with ``args``; save its JSON and return the result."""
    module = _module(name)
    device = getattr(args, "device", "cpu") or "cpu"
    machine = machine_info(device)
    print(f"\n## {name}: running ({'quick' if args.quick else 'full'}; load average {machine['loadavg']})", flush=True)
    start = time.perf_counter()
    result = module.run(args)
    result["machine"] = {**machine, "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    result["quick"] = args.quick
    path = save_json(result, args.output)
    print(module.table(result), flush=True)
    print(f"\n({name}: {result['wall_seconds']:.0f} s; results in {display_path(path)})", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    name = args.name or "all"
    if args.update_readme and args.quick:
        parser.error("--update-readme needs a full run: --quick results measure nothing")
    args.output = output_dir(args.output, quick=args.quick, update_readme=args.update_readme)
    threads = set_threads(args.threads)
    print(f"# resnet-lightning benchmarks ({threads} torch threads)", flush=True)
    names = list(BENCHMARKS) if name == "all" else [name]
    start = time.perf_counter()
    results = {}
    for one in names:
        # Each benchmark gets its own defaults; the shared options are the ones given.
        one_args = parser.parse_args([one, *_shared_argv(args)]) if name == "all" else args
        one_args.output, one_args.update_readme = args.output, args.update_readme
        results[one] = run_one(one, one_args)
    wall = time.perf_counter() - start
    print(f"\nTotal: {wall:.0f} s ({wall / 60:.1f} min) for {', '.join(names)}", flush=True)
    if name == "all":
        save_json({"benchmark": "suite", "wall_seconds": round(wall, 1), "quick": args.quick, "threads": threads,
                   "argv": sys.argv[1:] if argv is None else argv}, args.output)
    if args.update_readme:
        from benchmarks.readme import README, update_readme

        update_readme(results, suite_seconds=wall if name == "all" else None)
        print(f"Results in {display_path(args.output)}/; {display_path(README)} updated", flush=True)
    else:
        print(f"Results in {display_path(args.output)}/ (tracked files untouched; --update-readme writes "
              "benchmarks/results/ and benchmarks/README.md)", flush=True)


def _shared_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--quick"] if args.quick else []
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    return argv


if __name__ == "__main__":
    main()
