"""SEARCH.yaml: read, checked, and turned into the pieces of a study.

A whole file (``resnet-lightning search --help`` repeats this)::

    study: digits-blocks                # study name (default: the file's name); --study overrides
    configs: [../digits.yaml]           # what `fit --config` takes, relative to this file
    fixed:                              # dotted fit options every trial gets (and best.yaml keeps)
      trainer.max_epochs: 10
    space:                              # dotted fit options -> Optuna distributions
      model.block: {type: categorical, choices: [basic, preact, plain, highway]}
      model.optimizer.init_args.lr: {type: float, low: 0.01, high: 0.3, log: true}
      model.arch_kwargs.layers.0: {type: int, low: 1, high: 4}     # a list element (fixed: gives the others)
      model.block_kwargs.gate_bias: {type: float, low: -3, high: 0, when: {model.block: highway}}  # only then
    objectives: {val/acc: maximize, macs: minimize}
    sampler: {name: nsga2, seed: 0}     # tpe (default: one objective, or constraints:) | nsga2 (default, several) | random | grid
    pruner: {name: median, n_startup_trials: 2}   # none (default) | median | percentile | hyperband | successivehalving
                                        # | wilcoxon | patient (wraps one: {name: patient, patience: 2, wrapped: {name: median}})
                                        # | moasha (several objectives: {name: moasha, min_epochs: 1, reduction_factor: 3})
    constraints: {macs: {max: 2.0e7}, latency_ms: {max: 5}}   # budgets (macs, params, latency_ms): over budget never trains
    latency: {batch_size: 1, warmup: 5, repeats: 20, threads: 1}          # how latency_ms is measured before each fit
    n_trials: 40                        # stop when the study holds this many finished trials (all workers)
    timeout: 3600                       # or after this many seconds of this worker
    enqueue:                            # trials to run first, e.g. a known good configuration
      - {model.block: basic, model.optimizer.init_args.lr: 0.1}
    confirm: {seeds: 3}                 # then retrain each Pareto point with 3 further seeds: intervals in pareto.csv
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import BaseDistribution

from ..config_limits import ConfigTooLargeError, check_yaml_size
from ..errors import UserError, did_you_mean, one_line
from .algorithms import PRUNERS, SAMPLERS, normalise, try_algorithms
from .constraints import Constraints, parse_constraints
from .costs import parse_latency
from .intervals import parse_confirm
from .moasha import check_moasha
from .objectives import Objective, parse_objectives
from .space import SearchConfigError, check_conditions, contains, describe, parse_space

KEYS = ("study", "configs", "fixed", "space", "objectives", "sampler", "pruner", "n_trials", "timeout", "enqueue",
        "constraints", "latency", "confirm")


class SearchFileNotFoundError(UserError, FileNotFoundError):
    """The search file, or a fit config file it names, does not exist (a mistake in what was written: exit 2)."""

    exit_code = 2


@dataclass
class SearchConfig:
    """Everything a search file says, checked."""

    path: Path
    study: str
    configs: list[Path]
    space: dict[str, BaseDistribution]
    objectives: list[Objective]
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)
    n_trials: int | None = None
    timeout: float | None = None
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    constraints: Constraints | None = None
    latency: dict[str, int] | None = None  # latency_ms's measurement, when an objective or a constraint uses it
    confirm: int | None = None  # further seeds per Pareto point (confirm: {seeds: K}), run after the trials

    @property
    def directions(self) -> list[str]:
        """Optuna's ``directions``, one per objective."""
        return [o.direction for o in self.objectives]

    @property
    def monitor(self) -> str | None:
        """The metric the pruner watches every epoch (None without a pruner)."""
        if self.pruner["name"] == "none":
            return None
        return self.pruner.get("monitor") or next(o.name for o in self.objectives if o.is_metric)


def load_search_config(path: str | Path) -> SearchConfig:
    """Read and check a search file.

    Raises:
        SearchFileNotFoundError: The file or one of its ``configs`` does not exist (a ``FileNotFoundError``).
        SearchConfigError: A key or value that cannot be used; the message names it and the fix.
    """
    path = Path(path)
    raw = read_yaml_mapping(path, "search file", "SEARCH.yaml", "configs/search/", KEYS)
    space = parse_space(raw.get("space"))
    objectives = parse_objectives(raw.get("objectives", {"val/acc": "maximize"}))
    constraints = parse_constraints(raw.get("constraints"))
    # With budgets, TPE by default: it learns feasibility from the over-budget trials (PRUNED, never trained),
    # which NSGA-II's generations, built from COMPLETE trials only, never see.
    sampler = normalise(raw.get("sampler"), "sampler", SAMPLERS, "tpe" if len(objectives) == 1 or constraints else "nsga2")
    pruner = normalise(raw.get("pruner"), "pruner", PRUNERS, "none")
    latency = parse_latency(raw.get("latency"))
    uses_latency = "latency_ms" in {o.name for o in objectives} | (constraints.measures if constraints else set())
    if pruner["name"] not in ("none", "moasha") and len(objectives) > 1:
        raise SearchConfigError(
            f"pruner {pruner['name']}: Optuna prunes by one value per epoch, and this search has {len(objectives)} objectives "
            f"({', '.join(o.name for o in objectives)}); set pruner: none or pruner: moasha, or keep one objective"
        )
    if pruner["name"] == "moasha":
        pruner = check_moasha(pruner, objectives)
    if pruner["name"] != "none" and not any(o.is_metric for o in objectives) and not pruner.get("monitor"):
        raise SearchConfigError("pruner: no objective is a logged metric to watch; add pruner: {monitor: val/acc, ...}")
    seed = sampler.get("seed")
    if seed is not None:
        sampler_seed(seed, f"{path}: sampler: seed:")
    try_algorithms(sampler, pruner, space, [o.direction for o in objectives], constraints)
    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SearchConfigError(f"fixed: {fixed!r} is not a mapping of dotted fit options to values, e.g. trainer.max_epochs: 10")
    overlap = sorted(set(fixed) & set(space))
    if overlap:
        raise SearchConfigError(f"{overlap[0]} is both fixed and searched; keep it in one of fixed: or space:")
    enqueue = raw.get("enqueue") or []
    if not isinstance(enqueue, list) or not all(isinstance(e, dict) for e in enqueue):
        raise SearchConfigError("enqueue: expected a list of {dotted key: value} mappings, one per trial to run first")
    for params in enqueue:
        unknown = sorted(set(params) - set(space))
        if unknown:
            raise SearchConfigError(f"enqueue: {unknown[0]!r} is not a key of space: ({', '.join(space)})")
        for key, value in params.items():
            if not contains(space[key], value):
                raise SearchConfigError(
                    f"enqueue: {key}={value!r} is not a value space.{key} can take ({describe(space[key])}); "
                    "an enqueued trial is one the sampler could have drawn: change the value or widen the space"
                )
    check_conditions(space, sampler["name"], enqueue)
    if raw.get("n_trials") is not None:
        positive_trials(raw["n_trials"], f"{path}: n_trials:")
    if raw.get("timeout") is not None:
        positive_seconds(raw["timeout"], f"{path}: timeout:")
    study = raw.get("study")
    if study is not None and (not isinstance(study, (str, int)) or isinstance(study, bool) or not str(study).strip()):
        raise SearchConfigError(f"{path}: study: {study!r} is not a name; e.g. study: digits-blocks (or leave it out)")
    return SearchConfig(
        path=path,
        study=str(study) if study is not None else path.stem,
        configs=config_files(raw.get("configs"), path),
        space=space,
        objectives=objectives,
        sampler=sampler,
        pruner=pruner,
        fixed=dict(fixed),
        n_trials=raw.get("n_trials"),
        timeout=raw.get("timeout"),
        enqueue=enqueue,
        constraints=constraints,
        latency=latency if uses_latency else None,
        confirm=parse_confirm(raw.get("confirm"), path),
    )


def read_yaml_mapping(path: Path, kind: str, flag: str, examples: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """A YAML file of ``kind`` (e.g. "search file") read safely, as a mapping with only ``keys``.

    Raises:
        SearchFileNotFoundError: It does not exist.
        SearchConfigError: Not readable, not text, too large, not YAML, not a mapping, or an unknown key.
    """
    if path.is_dir():
        raise SearchConfigError(f"{kind} {path} is a directory; pass --config {flag} (examples: {examples})")
    if not path.is_file():
        raise SearchFileNotFoundError(f"{kind} {path} does not exist; pass --config {flag} (examples: {examples})")
    try:
        text = path.read_text(encoding="utf-8")
        check_yaml_size(text)  # an alias bomb or 20,000 levels of nesting is refused before it is expanded
        raw = yaml.safe_load(text) or {}
    except OSError as err:
        raise SearchConfigError(f"cannot read {kind} {path}: {err.strerror or err}; check its permissions") from None
    except UnicodeDecodeError:
        raise SearchConfigError(f"{kind} {path} is not text (not UTF-8); pass a YAML file like those in {examples}") from None
    except ConfigTooLargeError as err:
        raise SearchConfigError(f"{kind} {path}: not loaded: the YAML {err}") from None
    except yaml.YAMLError as err:
        raise SearchConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(raw, dict):
        raise SearchConfigError(f"{path}: expected a mapping with keys {', '.join(keys)}")
    for key in raw:
        if key not in keys:
            hint = did_you_mean(repr(str(key)), map(repr, keys))  # quoted, as the key is
            raise SearchConfigError(one_line(f"{path}: unknown key {key!r}", hint, f"the keys are {', '.join(keys)}"))
    return raw


def positive_trials(value: Any, what: str) -> int:
    """``value`` as a number of trials (an integer >= 1).

    Raises:
        SearchConfigError: Naming ``what``, the value and an example.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SearchConfigError(f"{what} {value!r} is not a number of trials; expected an integer >= 1, e.g. 40")
    return value


def positive_seconds(value: Any, what: str) -> float:
    """``value`` as a time limit (a finite number of seconds > 0).

    Raises:
        SearchConfigError: Naming ``what``, the value and an example.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SearchConfigError(f"{what} {value!r} is not a time limit; expected a number of seconds > 0, e.g. 3600")
    return float(value)


def sampler_seed(value: Any, what: str) -> int:
    """``value`` as a sampler seed (what NumPy's generators take: an integer in [0, 2**32 - 1]).

    Raises:
        SearchConfigError: Naming ``what``, the value and an example.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise SearchConfigError(f"{what} {value!r} is not a seed; expected an integer from 0 to 4294967295, e.g. 0")
    return value


def config_files(configs: Any, search_file: Path) -> list[Path]:
    """The base ``fit --config`` files, resolved against the search file's directory (as jsonargparse does)."""
    if configs is None:
        return []
    configs = [configs] if isinstance(configs, str) else configs
    if not isinstance(configs, list):
        raise SearchConfigError(f"configs: {configs!r} is not a list of fit config files, e.g. configs: [../digits.yaml]")
    files = []
    for name in configs:
        file = (search_file.parent / str(name)).resolve()
        if file.is_dir():
            raise SearchConfigError(f"configs: {name} is a directory ({file}); list fit config files, e.g. configs: [../digits.yaml]")
        if not file.is_file():
            raise SearchFileNotFoundError(
                f"configs: {name} does not exist (looked for {file}; paths are relative to {search_file})"
            )
        files.append(file)
    return files
