"""Sampler and pruner from SEARCH.yaml: a name and Optuna's own options for it.

::

    sampler: {name: tpe, seed: 0, n_startup_trials: 5}      # tpe | nsga2 | random | grid
    pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 1}
    pruner: {name: patient, patience: 2, wrapped: {name: median, n_startup_trials: 2}}

Options are passed to the Optuna class as they are, so Optuna's documentation is
the reference for them: samplers ``optuna.samplers.TPESampler``, ``NSGAIISampler``,
``RandomSampler``, ``GridSampler``; pruners (one objective only) ``none``
(``NopPruner``), ``median`` (``MedianPruner``), ``percentile`` (``PercentilePruner``,
``percentile`` required), ``hyperband`` (``HyperbandPruner``), ``successivehalving``
(``SuccessiveHalvingPruner``), ``wilcoxon`` (``WilcoxonPruner``) and ``patient``
(``PatientPruner``, whose ``wrapped_pruner`` is written ``wrapped:``, a pruner spec
itself; without one it prunes on patience alone). The pruners see one value per
epoch: the monitored metric after each validation.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import optuna
from optuna.distributions import BaseDistribution

from ..errors import did_you_mean, one_line
from .constraints import SETS_CONSTRAINTS, Constraints
from .moasha import MOASHAPruner
from .space import SearchConfigError, grid, suggest

SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,
}
REFERENCE = "give each option the type and range Optuna's documentation of that class gives"
PRUNERS = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successivehalving": optuna.pruners.SuccessiveHalvingPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "patient": optuna.pruners.PatientPruner,
    "moasha": MOASHAPruner,  # a NopPruner to Optuna: the fit's reporter applies MO-ASHA (several objectives)
}
# An Optuna option with another name in the search file (PatientPruner's wrapped_pruner is a spec: wrapped:).
RENAMED = {"wrapped_pruner": "wrapped"}
# The option of the samplers that learn constraints on Optuna 4 (TPE, NSGA-II; not random or grid sampling).
CONSTRAINED = "constraints_func"


def normalise(spec: Any, what: str, names: dict[str, Any], default: str) -> dict[str, Any]:
    """``"tpe"`` or ``{name: tpe, ...}`` (or nothing) -> ``{"name": "tpe", ...}``, checked against the class's options."""
    spec = {"name": default} if spec is None else {"name": spec} if isinstance(spec, str) else spec
    if not isinstance(spec, dict):
        raise SearchConfigError(f"{what}: {spec!r} is not a name or a mapping; e.g. {what}: {{name: {default}}}")
    spec = {"name": default, **spec}
    name = str(spec["name"]).lower().replace("-", "").replace("_", "")
    if name not in names:
        hint = did_you_mean(repr(name), map(repr, names))  # quoted, as the name is
        raise SearchConfigError(one_line(f"{what}: unknown {what} {spec['name']!r}", hint, f"available: {', '.join(names)}"))
    options = {k: v for k, v in spec.items() if k not in ("name", "monitor")}
    accepted = [RENAMED.get(p, p) for p in inspect.signature(names[name]).parameters if p not in ("self", "search_space")]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise SearchConfigError(
            f"{what} {name}: unknown option {unknown[0]!r}; {names[name].__name__} takes {', '.join(accepted) or 'none'}"
        )
    if name == "wilcoxon":  # Optuna 4.0 defaults to 0 and then fails on one epoch's difference; later ones wait for 2
        spec.setdefault("n_startup_steps", 2)
    if options.get("wrapped") is not None:  # patient: the pruner it wraps, checked the same way
        spec["wrapped"] = normalise(spec["wrapped"], f"{what}.wrapped", names, "median")
    return {**spec, "name": name}


def make_sampler(
    spec: dict[str, Any], space: dict[str, BaseDistribution], constraints: Constraints | None = None
) -> optuna.samplers.BaseSampler:
    """The Optuna sampler a normalised ``sampler:`` spec names; on Optuna 4, TPE and NSGA-II get ``constraints`` as
    their ``constraints_func`` (Optuna 5 reads the values the worker sets: see :mod:`.constraints`)."""
    options = {k: v for k, v in spec.items() if k != "name"}
    if constraints is not None and CONSTRAINED in inspect.signature(SAMPLERS[spec["name"]]).parameters and not SETS_CONSTRAINTS:
        options["constraints_func"] = constraints
    try:
        if spec["name"] == "grid":
            return optuna.samplers.GridSampler(grid(space), **options)
        return SAMPLERS[spec["name"]](**options)
    except (TypeError, ValueError) as err:
        raise SearchConfigError(f"sampler {spec['name']}: Optuna refused its options ({err}); {REFERENCE}") from None


def make_pruner(spec: dict[str, Any]) -> optuna.pruners.BasePruner:
    """The Optuna pruner a normalised ``pruner:`` spec names (``monitor`` is ours, not Optuna's)."""
    options = {k: v for k, v in spec.items() if k not in ("name", "monitor")}
    if spec["name"] == "patient":  # wrapped: a pruner spec; without one, patience alone prunes
        wrapped = options.pop("wrapped", None)
        options["wrapped_pruner"] = None if wrapped is None else make_pruner(wrapped)
    try:
        return PRUNERS[spec["name"]](**options)
    except (TypeError, ValueError) as err:
        raise SearchConfigError(f"pruner {spec['name']}: Optuna refused its options ({err}); {REFERENCE}") from None


def try_algorithms(
    sampler: dict[str, Any], pruner: dict[str, Any], space: dict[str, BaseDistribution], directions: list[str],
    constraints: Constraints | None = None,
) -> None:
    """Draw and prune two trials of a throwaway in-memory study with this sampler and pruner.

    Optuna checks some options only when they are first used (``n_startup_trials: "5"``
    fails at the first draw); this refuses them before the study exists, not at its first trial.

    Raises:
        SearchConfigError: Naming the sampler or pruner and Optuna's complaint.
    """
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        _try_algorithms(sampler, pruner, space, directions, constraints)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _try_algorithms(
    sampler: dict[str, Any], pruner: dict[str, Any], space: dict[str, BaseDistribution], directions: list[str],
    constraints: Constraints | None,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(
            directions=directions, sampler=make_sampler(sampler, space, constraints), pruner=make_pruner(pruner)
        )
        for _ in range(2):
            what = f"sampler {sampler['name']}"
            try:
                trial = study.ask()
                suggest(trial, space)
                if len(directions) == 1:  # Optuna prunes single-objective studies only
                    what = f"pruner {pruner['name']}"
                    trial.report(0.0, step=0)
                    trial.should_prune()
                what = f"sampler {sampler['name']}"
                study.tell(trial, [0.0] * len(directions))
            except (TypeError, ValueError, KeyError) as err:
                raise SearchConfigError(f"{what}: Optuna refused its options ({' '.join(str(err).split())}); {REFERENCE}") from None
