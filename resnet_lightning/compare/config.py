"""COMPARE.yaml: which variants to train side by side, over how many seeds, and what to report.

A whole file (``resnet-lightning compare --help`` repeats this)::

    name: degradation                   # the comparison (default: the file's name)
    configs: [../digits.yaml]           # what `fit --config` takes, relative to this file
    fixed:                              # dotted fit options every run gets
      model.arch: cifar_resnet
      trainer.max_epochs: 15
    baseline: plain-20                  # the variant the others are measured against
    variants:                           # name -> dotted fit options (as in a search file's space)
      plain-20: {model.block: plain, model.arch_kwargs.depth: 20}
      plain-56: {model.block: plain, model.arch_kwargs.depth: 56}
    seeds: 3                            # seed_everything 0, 1, 2 for every variant (--seeds overrides)
    metrics: [test/acc, train/acc]      # what to report; the first is the headline (default: test/acc)

A ``test/`` metric is the test of the run's best checkpoint; any other metric the fit
logs counts at its last epoch. MACs, parameters, wall time and training images/s are
reported for every variant besides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import CategoricalDistribution, IntDistribution

from ..errors import did_you_mean, one_line
from ..search.config import (
    SearchConfig,
    SearchFileNotFoundError,
    config_files,
    read_yaml_mapping,
)
from ..search.objectives import Objective
from ..search.space import SearchConfigError, cli_args

KEYS = ("name", "configs", "fixed", "baseline", "variants", "seeds", "metrics")
MAX_SEEDS = 1000
SEED_KEY = "seed_everything"  # set per run: runs that share a seed share data order (and, where shapes agree, initial weights)
DEFAULT_METRIC = "test/acc"
EXAMPLE = "e.g. variants: {plain-20: {model.block: plain}, resnet-20: {model.block: basic}}"
# What every run records each epoch, for the curves (training and validation error) and the table.
CURVE_METRICS = ("train/acc", "val/acc", "train/images_per_sec")


class CompareConfigError(SearchConfigError):
    """COMPARE.yaml (or a --seeds value) cannot be used; the message names the value and the fix."""


@dataclass
class Comparison:
    """Everything a comparison file says, checked."""

    path: Path
    name: str
    configs: list[Path]
    baseline: str
    variants: dict[str, dict[str, Any]]
    seeds: int
    metrics: list[str]
    fixed: dict[str, Any] = field(default_factory=dict)
    raw_configs: list[str] = field(default_factory=list)

    def options(self, variant: str, seed: int) -> dict[str, Any]:
        """The dotted fit options of one run: the variant's, then its seed."""
        return {**self.variants[variant], SEED_KEY: seed}

    def as_search(self) -> SearchConfig:
        """The comparison as the search machinery sees it: a grid of variant x seed whose runs record the metrics."""
        recorded = [m for m in dict.fromkeys([*CURVE_METRICS, *self.metrics]) if not m.startswith("test/")]
        return SearchConfig(
            path=self.path,
            study=self.name,
            configs=self.configs,
            space={"variant": CategoricalDistribution(list(self.variants)), "seed": IntDistribution(0, MAX_SEEDS - 1)},
            objectives=[Objective(name, "maximize") for name in recorded],  # what each run's reporter records every epoch
            sampler={"name": "random"},
            pruner={"name": "none"},
            fixed=self.fixed,
        )

    def definition(self) -> dict[str, Any]:
        """What makes two comparisons the same one (runs of one are results of the other): not the seeds, baseline or metrics."""
        return {"configs": self.raw_configs, "fixed": self.fixed, "variants": self.variants}


def load_comparison(path: str | Path, seeds: int | None = None, extra_configs: list[Path] | None = None,
                    baseline: str | None = None) -> Comparison:
    """Read and check a comparison file.

    Args:
        path: COMPARE.yaml.
        seeds: Overrides its ``seeds:``.
        extra_configs: Fit configs given after it on the command line (``--config configs/data/cifar10.yaml``): they
            follow its ``configs:``, and the comparison's name gets their names (``degradation-cifar10``), since runs
            on other data are another comparison.
        baseline: Overrides its ``baseline:``.

    Raises:
        SearchFileNotFoundError: The file or one of its ``configs`` does not exist.
        CompareConfigError: A key or value that cannot be used.
    """
    path = Path(path)
    try:
        raw = read_yaml_mapping(path, "comparison file", "COMPARE.yaml", "configs/compare/", KEYS)
    except CompareConfigError:
        raise
    except SearchConfigError as err:
        raise CompareConfigError(str(err)) from None
    variants = _variants(raw.get("variants"), path)
    baseline = baseline if baseline is not None else raw.get("baseline", next(iter(variants)))
    if baseline not in variants:
        raise CompareConfigError(one_line(
            f"{path}: baseline {baseline!r} is not one of the variants", did_you_mean(str(baseline), variants),
            f"the variants are {', '.join(variants)}; name one of them as baseline:"
        ))
    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise CompareConfigError(f"{path}: fixed: {fixed!r} is not a mapping of dotted fit options, e.g. trainer.max_epochs: 10")
    _refuse_seed_options({"fixed": fixed, **{f"variants.{n}": o for n, o in variants.items()}}, path)
    raw_configs = raw.get("configs") or []
    raw_configs = [raw_configs] if isinstance(raw_configs, str) else raw_configs
    try:
        configs = config_files(raw_configs, path)
    except SearchConfigError as err:
        raise CompareConfigError(f"{path}: {err}") from None
    name = raw.get("name", path.stem)
    if not isinstance(name, (str, int)) or isinstance(name, bool) or not str(name).strip():
        raise CompareConfigError(f"{path}: name: {name!r} is not a name; e.g. name: degradation (or leave it out)")
    for extra in extra_configs or []:
        if not Path(extra).is_file():
            raise SearchFileNotFoundError(f"--config {extra} does not exist; after COMPARE.yaml, --config takes fit config files "
                                          "such as configs/data/cifar10.yaml")
        configs.append(Path(extra).resolve())
        raw_configs = [*raw_configs, str(Path(extra).resolve())]
        name = f"{name}-{Path(extra).stem}"
    return Comparison(
        path=path,
        name=str(name),
        configs=configs,
        baseline=str(baseline),
        variants=variants,
        seeds=check_seeds(raw.get("seeds", 3) if seeds is None else seeds, "--seeds" if seeds is not None else f"{path}: seeds:"),
        metrics=_metrics(raw.get("metrics", [DEFAULT_METRIC]), path),
        fixed=dict(fixed),
        raw_configs=[str(c) for c in raw_configs],
    )


def check_seeds(value: Any, what: str) -> int:
    """``value`` as a number of seeds: 2 or more (one seed gives no interval).

    Raises:
        CompareConfigError: Naming ``what``, the value and what to pass.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= MAX_SEEDS:
        raise CompareConfigError(
            f"{what} {value!r} is not a number of seeds; expected an integer from 2 to {MAX_SEEDS} (one seed gives no "
            "interval), e.g. 3"
        )
    return value


def _variants(spec: Any, path: Path) -> dict[str, dict[str, Any]]:
    if not isinstance(spec, dict) or len(spec) < 2:
        raise CompareConfigError(f"{path}: variants: expected a mapping of two or more names to dotted fit options; {EXAMPLE}")
    twice = _names_given_twice(path)
    if twice:
        raise CompareConfigError(f"{path}: two variants are named {twice!r}; give each variant its own name")
    variants = {}
    for name, options in spec.items():
        if not isinstance(name, (str, int)) or isinstance(name, bool) or not str(name).strip():
            raise CompareConfigError(f"{path}: variant name {name!r} is not a name; {EXAMPLE}")
        options = options or {}
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise CompareConfigError(
                f"{path}: variants.{name}: {options!r} is not a mapping of dotted fit options to values, "
                "e.g. {model.block: plain, model.arch_kwargs.depth: 56}"
            )
        bad = [k for k in options if k.startswith("-") or not k.replace(".", "").replace("_", "").isalnum()]
        if bad:
            raise CompareConfigError(f"{path}: variants.{name}: {bad[0]!r} is not a dotted fit option like model.block")
        variants[str(name)] = dict(options)
    same = [(a, b) for i, a in enumerate(variants) for b in list(variants)[i + 1:] if cli_args(variants[a]) == cli_args(variants[b])]
    if same:
        raise CompareConfigError(f"{path}: variants {same[0][0]!r} and {same[0][1]!r} have the same options; make them differ or drop one")
    return variants


def _names_given_twice(path: Path) -> str | None:
    """A variant name that appears twice under ``variants:`` (PyYAML keeps the last one silently)."""
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    for key, value in getattr(root, "value", []):
        if getattr(key, "value", None) == "variants" and isinstance(value, yaml.MappingNode):
            names = [getattr(k, "value", None) for k, _ in value.value]
            return next((n for i, n in enumerate(names) if n in names[:i]), None)
    return None


def _refuse_seed_options(sections: dict[str, dict[str, Any]], path: Path) -> None:
    for where, options in sections.items():
        if SEED_KEY in options:
            raise CompareConfigError(
                f"{path}: {where} sets {SEED_KEY}; the comparison sets it per run (seeds 0 to K-1): remove it and use seeds: K"
            )


def _metrics(spec: Any, path: Path) -> list[str]:
    spec = [spec] if isinstance(spec, str) else spec
    if not isinstance(spec, list) or not spec or not all(isinstance(m, str) and m.strip() for m in spec):
        raise CompareConfigError(f"{path}: metrics: {spec!r} is not a list of logged metric names, e.g. metrics: [test/acc]")
    return list(dict.fromkeys(spec))
