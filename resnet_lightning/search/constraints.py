"""Budgets on what a network costs: ``constraints:`` in SEARCH.yaml.

::

    constraints:                 # measure -> {max: number} (or min:, or both)
      macs: {max: 2.0e7}
      params: {max: 1.0e6}
      latency_ms: {max: 5}
    latency: {batch_size: 1, warmup: 5, repeats: 20, threads: 1}   # how latency_ms is measured (these are the defaults)

The costs are measured before a trial's fit (:mod:`.costs`); a configuration over
budget never trains: its trial records ``over_budget`` (the reason) and
``epochs: 0`` and ends PRUNED. Every trial, trained or not, gets one constraint
value per bound (``value - max``, ``min - value``; feasible when all are <= 0):
on Optuna 5 the worker sets them with ``Trial.set_constraint`` before the fit
(``trial.constraints``: ``{"macs max": -2.5e5}``); on Optuna 4 the sampler's
``constraints_func`` computes them when the trial ends (the ``constraints``
system attribute, a list). TPE learns feasibility from them (it reads PRUNED
trials), so it is the default sampler of a search with budgets; NSGA-II and GP
read COMPLETE trials only, so they never see an over-budget trial (the budget
saves its training, but does not steer them); random and grid sampling ignore them. ``best_trials`` leaves infeasible trials out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ..errors import did_you_mean, one_line
from .costs import COSTS, format_number
from .space import SearchConfigError

BOUNDS = ("max", "min")
# Optuna 5 deprecates samplers' constraints_func for Trial.set_constraint (which Optuna 4 lacks).
SETS_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")


@dataclass(frozen=True)
class Bound:
    """One budget: ``measure`` at most (``max``) or at least (``min``) ``limit``."""

    measure: str
    kind: str
    limit: float

    def excess(self, value: float) -> float:
        """How far ``value`` is over this bound (<= 0: within it), as Optuna's constraints_func wants."""
        return value - self.limit if self.kind == "max" else self.limit - value

    @property
    def key(self) -> str:
        """The constraint's name in the trial (``macs max``)."""
        return f"{self.measure} {self.kind}"

    def describe(self, value: float) -> str:
        """``macs 3.1e7 > max 2.0e7``."""
        sign = ">" if self.kind == "max" else "<"
        return f"{self.measure} {format_number(value)} {sign} {self.kind} {format_number(self.limit)}"


@dataclass(frozen=True)
class Constraints:
    """The search's budgets; called with a finished trial, it is Optuna's ``constraints_func``."""

    bounds: tuple[Bound, ...]

    @property
    def measures(self) -> set[str]:
        """The costs the budgets need measured."""
        return {b.measure for b in self.bounds}

    def violations(self, costs: dict[str, float]) -> list[str]:
        """One phrase per bound ``costs`` exceed, e.g. ``["macs 3.1e7 > max 2.0e7"]``."""
        return [b.describe(costs[b.measure]) for b in self.bounds if b.excess(costs[b.measure]) > 0]

    def record(self, trial: optuna.Trial, costs: dict[str, float]) -> None:
        """Set the trial's constraint values from its measured costs (Optuna 5; on 4 the sampler computes them)."""
        if SETS_CONSTRAINTS:
            for bound in self.bounds:
                trial.set_constraint(bound.key, bound.excess(costs[bound.measure]))

    def __call__(self, trial: FrozenTrial) -> list[float]:
        """One value per bound from the trial's measured costs (user attributes); a cost never measured is infeasible."""
        attrs = trial.user_attrs
        return [b.excess(float(attrs[b.measure])) if attrs.get(b.measure) is not None else math.inf for b in self.bounds]


def parse_constraints(spec: Any) -> Constraints | None:
    """``{macs: {max: 2.0e7}, ...}`` -> :class:`Constraints` (None when there are none).

    Raises:
        SearchConfigError: Not a mapping, a measure that is not a cost known before training, a bound
            that is not ``{max: number}`` / ``{min: number}``, a number that is not finite, or min > max.
    """
    if spec is None or spec == {}:
        return None
    example = "e.g. constraints: {macs: {max: 2.0e7}, latency_ms: {max: 5}}"
    if not isinstance(spec, dict):
        raise SearchConfigError(f"constraints: {spec!r} is not a mapping of measure to {{max: number}}; {example}")
    bounds = []
    for measure, limits in spec.items():
        if measure not in COSTS:
            known = "wall_time is known only after training; " if measure == "wall_time" else ""
            hint = did_you_mean(repr(str(measure)), map(repr, COSTS))
            raise SearchConfigError(one_line(
                f"constraints: unknown measure {measure!r}", hint,
                f"{known}a budget is on what a network costs before training: {', '.join(COSTS)}",
            ))
        if not isinstance(limits, dict) or not limits:
            raise SearchConfigError(f"constraints.{measure}: {limits!r} is not a bound; write {measure}: {{max: NUMBER}} (or min:)")
        for kind, limit in limits.items():
            if kind not in BOUNDS:
                raise SearchConfigError(f"constraints.{measure}: unknown bound {kind!r}; write max: NUMBER (or min: NUMBER)")
            bounds.append(Bound(str(measure), kind, _number(limit, f"constraints.{measure}.{kind}")))
        if "max" in limits and "min" in limits and limits["min"] > limits["max"]:
            raise SearchConfigError(f"constraints.{measure}: min {limits['min']} > max {limits['max']}: no network fits; "
                                    "lower min or raise max")
    return Constraints(tuple(bounds))


def _number(value: Any, what: str) -> float:
    if isinstance(value, str):
        # PyYAML (YAML 1.1) reads 2e7 and 2.0e7 as text (it wants 2.0e+7); YAML 1.2 and everyone reading
        # the file read a number, so a string that is one is taken as one.
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SearchConfigError(f"{what}: {value!r} is not a finite number; e.g. max: 2.0e7")
    return float(value)
