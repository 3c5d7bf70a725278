"""``resnet-lightning compare``: variants side by side over seeds, with confidence intervals.

Examples::

    resnet-lightning compare --config configs/compare/degradation.yaml
    resnet-lightning compare --config configs/compare/degradation.yaml --seeds 5   # two more seeds per variant
    resnet-lightning compare --summary compare/degradation
    # N workers on N machines, one comparison:
    resnet-lightning compare --config COMPARE.yaml --storage postgresql://USER:PASS@HOST/optuna
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import CommandParser, UserError, did_you_mean, one_line
from ..report import write_report
from ..report.compare import STORED
from ..search.fit_args import REGISTRY_KEYS, fit_args, resolved_config
from ..search.storage import (
    JOURNAL_FILE,
    fail_orphaned_trials,
    open_storage,
    shown,
    storage_address,
)
from ..search.trial import PROCESSES, TrialFailed, default_process
from ..tracking.compare import log_comparison_to_wandb
from . import config as config_module
from .config import CompareConfigError, Comparison, check_seeds, load_comparison
from .outputs import analyse, verdict, write_outputs
from .runner import (
    DUPLICATE_ATTR,
    CompareRunner,
    failed_runs,
    pair,
    queue_missing_runs,
    results,
    stop_when_queue_is_empty,
)


class ComparisonFailedError(UserError, RuntimeError):
    """Some runs of the comparison failed (the others finished and are in the outputs)."""


def _seeds(text: str) -> int:
    try:
        value: object = int(text)
    except ValueError:
        value = text
    try:
        return check_seeds(value, "--seeds")
    except CompareConfigError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--seeds ")) from None


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="resnet-lightning compare",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Variants side by side over seeds, with confidence intervals. Every run is a fit, then a test of its "
        "best checkpoint, in its own run directory.",
        epilog="Examples:\n" + __doc__.split("::\n", 1)[1] + "\nCOMPARE.yaml, every key:\n"
        + config_module.__doc__.split("::\n", 1)[1].split('"""')[0],
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", type=Path, action="append", metavar="COMPARE.yaml",
                      help="the comparison file (keys below); more --config after it are fit configs its runs get too "
                      "(e.g. --config configs/data/cifar10.yaml), and name the comparison after them")
    what.add_argument("--summary", type=Path, metavar="DIR", help="rewrite DIR's outputs from its study and print the table; run nothing")
    parser.add_argument("--baseline", metavar="VARIANT", help="the variant the others are measured against (default: the file's baseline:)")
    parser.add_argument("--seeds", type=_seeds, metavar="K", help="seeds per variant (default: the file's seeds:, else 3)")
    parser.add_argument("--output", type=Path, metavar="DIR", help="outputs, runs and logs (default: compare/NAME)")
    parser.add_argument("--storage", metavar="URL", help="postgresql://, mysql:// or sqlite:/// URL, or a journal file path "
                        "(default: OUTPUT/study.journal)")
    parser.add_argument("--trial_process", choices=PROCESSES, default=default_process(),
                        help="fork: the worker forks per run (Linux default); fresh: a new interpreter per run")
    return parser


def main(argv: list[str] | None = None) -> int | None:
    """Run (or summarise) a comparison; returns the exit code (130 when interrupted)."""
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per run comes from _report instead
    if args.summary is not None:
        study, comparison = _load_existing(args.summary, args.storage, args.baseline)
        _finish(study, comparison, args.summary, to_wandb=False)  # a summary runs nothing new to log
        return None
    comparison = load_comparison(args.config[0], args.seeds, args.config[1:], args.baseline)
    output = args.output or Path("compare") / comparison.name
    if output.exists() and not output.is_dir():
        raise CompareConfigError(f"--output {output} is a file; the comparison writes a directory there: pass a new or existing directory")
    check_variants(comparison)  # before any run: unknown blocks, misspelt options
    address = storage_address(args.storage, output)
    study = _open_study(comparison, address)
    for number, queued in fail_orphaned_trials(study).items():
        again = "queued again" if queued else "not queued again"
        print(f"compare: trial {number} was left running by a killed worker on this host: FAIL, {again}", file=sys.stderr)
    queued = queue_missing_runs(study, comparison)
    finished = len(results(study))
    print(f"compare: {comparison.name!r} in {shown(address)}: {len(comparison.variants)} variants x {comparison.seeds} seeds; "
          f"{finished} run(s) finished, {len(queued)} queued now; outputs in {output}", file=sys.stderr)
    runner = CompareRunner(comparison.as_search(), address, output, comparison.name, args.trial_process, comparison=comparison)
    try:
        if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.optimize(runner, catch=(TrialFailed,), callbacks=[_report, stop_when_queue_is_empty])
    except KeyboardInterrupt:
        print(f"compare: interrupted; finished runs are kept in {shown(address)}: run the same command to continue", file=sys.stderr)
        write_outputs(study, comparison, output)
        return 130
    _finish(study, comparison, output)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running:
        print(f"compare: {len(running)} run(s) still running in other workers; the last worker to finish rewrites the outputs "
              f"(or run `resnet-lightning compare --summary {output}` then)", file=sys.stderr)
    failed = failed_runs(study)
    if failed:
        first = failed[0]
        raise ComparisonFailedError(
            f"{len(failed)} of {len(comparison.variants) * comparison.seeds} runs failed, e.g. {pair(first)[0]} seed "
            f"{pair(first)[1]}: {first.user_attrs.get('fail_reason', 'see its log')}; the others are in {output}; "
            "fix that and run the same command again, which runs only the missing ones"
        )
    return None


def check_variants(comparison: Comparison) -> None:
    """Every variant's block and architecture must be installed and its fit command line must parse, before any run.

    The same checks as a search's (:func:`resnet_lightning.search.fit_args.check_search`), once per variant.
    """
    search = comparison.as_search()
    for name in comparison.variants:
        options = comparison.options(name, 0)
        try:
            for key, lookup in REGISTRY_KEYS.items():
                if key in options:
                    lookup(options[key])
            resolved_config(fit_args(search, options))
        except UserError as err:
            files = ", ".join(map(str, comparison.configs)) or "no base configs"
            raise CompareConfigError(
                f"{comparison.path}: variant {name!r}: {err} (base configs: {files}); variants: and fixed: take what "
                "`resnet-lightning fit --help` lists, as dotted keys like model.arch_kwargs.depth"
            ) from None


def _open_study(comparison: Comparison, address: str) -> optuna.Study:
    storage = open_storage(address, heartbeat=True)
    others = [n for n in optuna.get_all_study_names(storage) if n != comparison.name]
    if others and "://" not in address:
        raise CompareConfigError(
            f"{shown(address)} holds {others[0]!r}, not comparison {comparison.name!r}; pass another --output (or --storage)"
        )
    study = optuna.create_study(storage=storage, study_name=comparison.name, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.RandomSampler())
    stored = study.user_attrs.get(STORED)
    if stored is not None and stored["definition"] != _json(comparison.definition()):
        raise CompareConfigError(
            f"{shown(address)} holds a different comparison {comparison.name!r} (its configs, fixed options or variants differ "
            f"from {comparison.path}'s); pass another --output, or give the comparison another name: in the file"
        )
    study.set_user_attr(STORED, {
        "definition": _json(comparison.definition()), "path": str(comparison.path), "configs": [str(p) for p in comparison.configs],
        "baseline": comparison.baseline, "seeds": max(comparison.seeds, (stored or {}).get("seeds", 0)), "metrics": comparison.metrics,
    })
    return study


def _json(value: object) -> object:
    """``value`` as it comes back from the storage (JSON), so that stored and new compare equal."""
    import json

    return json.loads(json.dumps(value))


def _load_existing(output: Path, given: str | None, baseline: str | None) -> tuple[optuna.Study, Comparison]:
    """The comparison a ``--summary`` reads: the storage's only one, or (a database holding several) the one named as ``output``."""
    address = storage_address(given, output)
    if "://" not in address and not Path(address).is_file():
        raise CompareConfigError(f"no comparison in {output} (no {JOURNAL_FILE} there); pass the --output (or --storage) it ran with")
    storage = open_storage(address)
    studies = [optuna.load_study(study_name=name, storage=storage) for name in optuna.get_all_study_names(storage)]
    comparisons = {s.study_name: s for s in studies if STORED in s.user_attrs}
    if not comparisons:
        raise CompareConfigError(f"{shown(address)} holds no comparison (a search's study?); pass the --output a comparison ran with")
    if len(comparisons) > 1 and output.name not in comparisons:
        raise CompareConfigError(
            f"{shown(address)} holds {len(comparisons)} comparisons ({', '.join(sorted(comparisons))}); name the one to summarise "
            "as the output directory's last part, e.g. --summary compare/" + min(comparisons)
        )
    study = comparisons.get(output.name) or next(iter(comparisons.values()))
    stored = study.user_attrs[STORED]
    variants = stored["definition"]["variants"]
    if baseline is not None and baseline not in variants:
        raise CompareConfigError(one_line(f"--baseline {baseline!r} is not one of the variants", did_you_mean(baseline, variants),
                                          f"the variants are {', '.join(variants)}"))
    return study, Comparison(
        path=Path(stored["path"]), name=study.study_name, configs=[Path(p) for p in stored["configs"]],
        baseline=baseline or stored["baseline"], variants=variants, seeds=stored["seeds"], metrics=stored["metrics"],
        fixed=stored["definition"]["fixed"], raw_configs=stored["definition"]["configs"],
    )


def _report(study: optuna.Study, trial: FrozenTrial) -> None:
    attrs = trial.user_attrs
    variant, seed = pair(trial) or ("?", "?")
    if DUPLICATE_ATTR in attrs:
        print(f"compare: trial {trial.number}: {attrs['fail_reason']}", file=sys.stderr, flush=True)
        return
    if trial.state == TrialState.COMPLETE:
        what = ", ".join(f"{k}={v:.4g}" for k, v in attrs.get("values", {}).items())
    else:
        what = attrs.get("fail_reason", "")
    print(f"compare: trial {trial.number} {variant} seed {seed} {trial.state.name}: {what} ({attrs.get('wall_time', 0):.1f} s, "
          f"run {attrs.get('run_dir', '-')})", file=sys.stderr, flush=True)


def _finish(study: optuna.Study, comparison: Comparison, output: Path, to_wandb: bool = True) -> None:
    """Write the outputs (report.html too), log them to W&B when the runs have a WandbLogger, and print the headline table."""
    written = write_outputs(study, comparison, output)
    written["report.html"] = write_report(output)
    if to_wandb:
        log_comparison_to_wandb(output, comparison.name)
    metric = comparison.metrics[0]
    for row in (r for r in analyse(study, comparison) if r.metric == metric):
        i, d = row.interval, row.difference
        mean = f"{i.mean:.4g} [{i.low:.4g}, {i.high:.4g}] over {i.n} seeds" if i else "too few seeds finished"
        diff = f"; {d.interval.mean:+.4g} [{d.interval.low:+.4g}, {d.interval.high:+.4g}], p={d.p_value:.3g}" if d else ""
        print(f"compare: {row.variant}: {metric} {mean}{diff}: {verdict(row, comparison.baseline)}", file=sys.stderr)
    print(f"compare: wrote {', '.join(sorted(written))} in {output}", file=sys.stderr)
