"""``resnet-lightning search``: an Optuna study whose trials are ordinary fits.

Examples::

    resnet-lightning search --config configs/search/digits.yaml --n_trials 40
    resnet-lightning search --config configs/search/digits.yaml --summary
    resnet-lightning search --config configs/search/digits.yaml --confirm 3   # each Pareto point with 3 more seeds
    # N workers on N machines, one study:
    resnet-lightning search --config SEARCH.yaml --storage postgresql://USER:PASS@HOST/optuna --n_trials 200
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import CommandParser, UserError
from . import config as config_module
from . import storage as storage_module
from .algorithms import make_pruner, make_sampler
from .config import (
    SearchConfig,
    load_search_config,
    positive_seconds,
    positive_trials,
    sampler_seed,
)
from .confirm import confirm_front
from .fit_args import check_search
from .intervals import check_confirm_seeds
from .outputs import pareto_trials, summary_table, write_outputs
from .space import SearchConfigError
from .storage import (
    JOURNAL_FILE,
    counted_trials,
    fail_orphaned_trials,
    open_storage,
    shown,
    storage_address,
)
from .trial import PROCESSES, TrialFailed, TrialRunner, default_process


def _option(check, flag: str, convert):
    """An argparse ``type`` that converts, then checks with ``check`` (a config-file check), as one usage error."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = text  # the check refuses it with the message that says what is expected
        try:
            return check(value, flag)
        except SearchConfigError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"{flag} ")) from None
    return parse


def _name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty study name; give a name, e.g. --study digits-blocks (or leave it out)")
    return text


def build_parser() -> CommandParser:
    """The ``search`` parser; its help shows the whole search file."""
    parser = CommandParser(
        prog="resnet-lightning search",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Architecture and hyperparameter search: " + __doc__.split("\n\n")[0].split(": ", 1)[1],
        epilog="SEARCH.yaml, every key:\n" + config_module.__doc__.split("::\n", 1)[1].split('"""')[0]
        + "\nObjectives: any metric the fit logs (its best epoch), or macs, params, latency_ms, wall_time.\n"
        + "\nStorage:\n" + storage_module.__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--config", required=True, type=Path, metavar="SEARCH.yaml", help="the search file (keys below)")
    parser.add_argument("--study", type=_name, help="study name (default: the file's study:, else its name)")
    parser.add_argument("--storage", metavar="URL", help="postgresql://, mysql:// or sqlite:/// URL, or a journal file path "
                        "(default: OUTPUT/study.journal)")
    parser.add_argument("--n_trials", type=_option(positive_trials, "--n_trials", int), metavar="N", help="stop when the study holds this many finished trials, counting every "
                        "worker's and earlier runs' but not those of a killed worker (default: the file's n_trials:)")
    parser.add_argument("--timeout", type=_option(positive_seconds, "--timeout", float), metavar="S", help="stop starting trials after S seconds (default: the file's timeout:)")
    parser.add_argument("--output", type=Path, metavar="DIR", help="outputs, trial runs and logs (default: search/STUDY)")
    parser.add_argument("--seed", type=_option(sampler_seed, "--seed", int), help="the sampler's seed (default: the file's sampler: seed); give each worker "
                        "its own (e.g. --seed $SLURM_ARRAY_TASK_ID): workers with one seed draw the same trials")
    parser.add_argument("--trial_process", choices=PROCESSES, default=default_process(),
                        help="fork: the worker forks per trial (no start-up cost; Linux default); fresh: a new interpreter "
                        "per trial (default elsewhere)")
    parser.add_argument("--summary", action="store_true", help="print the study's trials, its front and the parameter "
                        "importances, and rewrite the outputs; run nothing")
    parser.add_argument("--confirm", type=_option(check_confirm_seeds, "--confirm", int), metavar="K",
                        help="retrain each Pareto point of the study as it stands with K further seeds (K >= 2), then "
                        "rewrite the outputs with intervals; runs no new trial (the file's confirm: does this after a search)")
    return parser


def main(argv: list[str] | None = None) -> int | None:
    """Run (or summarise) a search; returns the exit code (130 when interrupted)."""
    args = build_parser().parse_args(argv)
    search = load_search_config(args.config)
    name = args.study or search.study
    output = args.output or Path("search") / name
    if output.exists() and not output.is_dir():
        raise SearchConfigError(f"--output {output} is a file; the search writes a directory of outputs there: pass a new "
                                "or existing directory")
    address = storage_address(args.storage, output)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial comes from _report instead
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.summary and args.confirm is None:
        study = _load_existing(name, address, args.storage)
        print(summary_table(study, search))
        _write(study, search, output)
        return None
    if args.confirm is not None:
        study = _load_existing(name, address, args.storage)
        try:
            confirm_front(study, pareto_trials(study, search), search, address, output, args.confirm, args.trial_process)
        except KeyboardInterrupt:
            print(f"search: confirmation interrupted; its finished runs are kept in {shown(address)}: run the same command "
                  "to continue it", file=sys.stderr)
            _write(study, search, output)
            return 130
        if args.summary:
            print(summary_table(study, search))
        _write(study, search, output)
        return None

    check_search(search)  # before any trial: unknown blocks, misspelt keys, missing files
    if args.seed is not None:
        search.sampler["seed"] = args.seed
    storage = open_storage(address, heartbeat=True)
    study = optuna.create_study(
        storage=storage, study_name=name, directions=search.directions, load_if_exists=True,
        sampler=make_sampler(search.sampler, search.space, search.constraints), pruner=make_pruner(search.pruner),
    )
    if [d.name.lower() for d in study.directions] != search.directions:
        raise SearchConfigError(
            f"study {name!r} in {shown(address)} has directions {[d.name.lower() for d in study.directions]}, but {args.config} "
            f"asks for {search.directions}; pass another --study (or --output) for a new study"
        )
    for number, queued in fail_orphaned_trials(study).items():
        again = "queued again" if queued else "not queued again (it was itself a rerun of a trial whose worker died)"
        print(f"search: trial {number} was left running by a killed worker on this host: FAIL, {again}", file=sys.stderr)
    others = {t.user_attrs.get("worker") for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if others and search.sampler.get("seed") is not None and args.seed is None:  # the file's seed, shared by every worker
        print(f"search: warning: worker(s) {', '.join(sorted(map(str, others)))} run this study too; with the same sampler seed "
              "they draw the same trials: give each worker its own --seed", file=sys.stderr)
    for params in search.enqueue:
        study.enqueue_trial(params, skip_if_exists=True)
    n_trials = args.n_trials if args.n_trials is not None else search.n_trials
    timeout = args.timeout if args.timeout is not None else search.timeout
    if n_trials is None and timeout is None and search.sampler["name"] != "grid":
        raise SearchConfigError("nothing says when to stop: pass --n_trials N or --timeout S (or n_trials: in the search file)")
    if search.constraints and search.sampler["name"] != "tpe":
        print(f"search: note: over-budget configurations are not trained, but sampler {search.sampler['name']} does not learn "
              "from them (NSGA-II builds on trained trials only, random and grid draw blindly); sampler: tpe learns the "
              "budget", file=sys.stderr)
    finished = len(counted_trials(study))
    print(f"search: study {name!r} in {shown(address)}: {finished} finished trial(s); outputs in {output}", file=sys.stderr)
    runner = TrialRunner(search, address, output, name, args.trial_process)
    callbacks = [_report(search), _stop_when_every_trial_fails_alike]
    if n_trials is not None:
        if finished >= n_trials:
            print(f"search: the study already holds {finished} >= {n_trials} finished trials; raise --n_trials to run more",
                  file=sys.stderr)
        callbacks.append(_stop_at(n_trials))
    try:
        if n_trials is None or finished < n_trials:
            study.optimize(runner, timeout=timeout, catch=(TrialFailed,), callbacks=callbacks)
        if search.confirm and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            confirm_front(study, pareto_trials(study, search), search, address, output, search.confirm, args.trial_process)
    except KeyboardInterrupt:
        print(f"search: interrupted; the study is kept in {shown(address)}: run the same command to continue it", file=sys.stderr)
        _write(study, search, output)
        return 130
    _write(study, search, output)
    _refuse_a_search_without_results(study)
    return None


class SearchFailedError(UserError, ValueError):
    """Every trial of the study failed: there is no result to report."""


SAME_FAILURES = 3  # this many trials failed with one reason, before any succeeded: it is not their parameters


def _common_failure(trials: list[FrozenTrial]) -> tuple[str | None, int]:
    """The most frequent fail_reason among ``trials`` and how many have it."""
    reasons = Counter(t.user_attrs.get("fail_reason") for t in trials if t.user_attrs.get("fail_reason"))
    return reasons.most_common(1)[0] if reasons else (None, 0)


def _stop_when_every_trial_fails_alike(study: optuna.Study, trial: FrozenTrial) -> None:
    """Stop a study whose trials all failed, several with one reason (a missing dataset, a refused weights file)."""
    trials = counted_trials(study)
    if all(t.state == TrialState.FAIL for t in trials) and _common_failure(trials)[1] >= SAME_FAILURES:
        study.stop()


def _refuse_a_search_without_results(study: optuna.Study) -> None:
    """A study whose trials all failed is an error (exit 1, one line with the commonest reason), not a result."""
    trials = counted_trials(study)
    if not trials or any(t.state != TrialState.FAIL for t in trials):
        return
    reason, count = _common_failure(trials)
    why = f"{count} of them because {reason}" if reason else "see their logs"
    raise SearchFailedError(
        f"no trial of study {study.study_name!r} succeeded: {len(trials)} failed, {why}; fix that and run the same "
        "command again, which continues the study"
    )


def _stop_at(n_trials: int):
    """Stop the study once it holds ``n_trials`` counted trials (every worker's; see ``counted_trials``).

    Optuna's ``MaxTrialsCallback`` counts a trial failed by a killed worker too, and
    so ended the study before that trial's rerun ran.
    """
    def stop(study: optuna.Study, trial: FrozenTrial) -> None:
        if len(counted_trials(study)) >= n_trials:
            study.stop()

    return stop


def _load_existing(name: str, address: str, given: str | None) -> optuna.Study:
    if "://" not in address and not Path(address).is_file():  # a summary creates no journal
        where = f"--storage {given}" if given else f"{Path(address).parent} (no {JOURNAL_FILE} there)"
        raise SearchConfigError(f"no study {name!r} in {where}; pass the --study, --output or --storage the search ran with")
    storage = open_storage(address)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        raise SearchConfigError(
            f"no study {name!r} in {shown(address)} (studies there: {', '.join(names) or 'none'}); "
            "pass the --study, --output or --storage the search ran with"
        )
    return optuna.load_study(study_name=name, storage=storage)


def _report(search: SearchConfig):
    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        attrs = trial.user_attrs
        if trial.state == TrialState.COMPLETE:
            what = ", ".join(f"{o.name}={v:.4g}" for o, v in zip(search.objectives, trial.values))
        elif trial.state == TrialState.PRUNED:
            stopped = attrs.get("pruned_at_epoch")  # 0-based, as Optuna's steps; the console counts epochs from 1
            what = "over budget, not trained" if "over_budget" in attrs else f"stopped after epoch {stopped + 1 if stopped is not None else '?'}"
        else:
            what = attrs.get("fail_reason", "")
        if "same_as" in attrs:
            what += f", as trial {attrs['same_as']} (the same configuration, not trained again)"
        print(f"search: trial {trial.number} {trial.state.name}: {what} ({attrs.get('wall_time', 0):.1f} s, "
              f"run {attrs.get('run_dir', '-')})", file=sys.stderr, flush=True)

    return report


def _write(study: optuna.Study, search: SearchConfig, output: Path) -> None:
    written = write_outputs(study, search, output)
    print(f"search: wrote {', '.join(sorted(written))} in {output}", file=sys.stderr)
