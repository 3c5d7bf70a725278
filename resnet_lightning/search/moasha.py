"""MO-ASHA: early stopping when a search has several objectives.

Multi-objective asynchronous successive halving (Schmucker et al. 2021,
"Multi-objective multi-fidelity hyperparameter optimization with application to
fairness"; Salinas et al. 2021), as Syne Tune's ``MOASHA`` scheduler does it
(``syne_tune/optimizer/schedulers/multiobjective/moasha.py`` over the ``Bracket``
of ``schedulers/asha.py``): a trial that reaches a rung is compared once, on
arrival, with every trial that reached that rung before it::

    pruner: {name: moasha, min_epochs: 1, reduction_factor: 3}   # rungs at 1, 3, 9, ... epochs
    pruner: {name: moasha, rungs: [1, 3]}                        # or the rungs themselves

At a rung the trial goes on only if it is among the top ``max(1, n // reduction_factor)``
of the ``n`` trials that reached that rung, itself included (the count Optuna's
``SuccessiveHalvingPruner`` promotes), ranked by non-dominated sorting on the
search's objectives and, within a front, by crowding distance (both from NSGA-II,
Deb et al. 2002). Syne Tune orders a front by an epsilon-net instead; crowding
distance is what Optuna's NSGA-II uses. A trial ties with the trials it cannot be
told from and goes on if fewer than that many trials rank strictly ahead of it:
the first trial at a rung always goes on, and while fewer than ``reduction_factor``
trials have reached it, a trial goes on only if none ranks ahead of it.

The values at a rung: each metric objective as the fit logged it at that epoch
(the reporter's ``history``), each cost (``macs``, ``params``, ``latency_ms``) as
measured. They are recorded in the trial's user attribute ``rung_values``
(``{"1": {"val/acc": 0.91, "macs": 2.1e6}}``) before the trial reads the others'
from the study's storage, so workers on a journal file or a database see each
other's trials as they stand at that moment. ``wall_time`` is not known at a rung
and is refused as an objective. Optuna's own pruners take one value per epoch
(``trial.report`` raises in a multi-objective study), so Optuna holds a
``NopPruner`` and :class:`~.reporter.SearchTrialReporter` decides.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import yaml

from .space import SearchConfigError

RUNG_VALUES = "rung_values"  # the trial's user attribute: {epoch: {objective: value}}
NOT_AT_A_RUNG = ("wall_time",)  # known only when the trial has ended
LIGHTNING_MAX_EPOCHS = 1000  # Lightning's default when neither max_epochs nor max_steps is set


class MOASHAPruner(optuna.pruners.NopPruner):
    """What Optuna holds for ``pruner: moasha``: it never prunes; the fit's reporter applies MO-ASHA.

    Args:
        min_epochs: The first rung, in epochs.
        reduction_factor: eta: rungs at ``min_epochs * eta**k``; the top ``1/eta`` go on at each.
        rungs: The rungs themselves (epochs, increasing), instead of ``min_epochs``.
        objectives: Filled in from the search's objectives (name -> direction), not written by the user.
    """

    def __init__(
        self,
        min_epochs: int = 1,
        reduction_factor: float = 3,
        rungs: list[int] | None = None,
        objectives: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.min_epochs, self.reduction_factor, self.rungs, self.objectives = min_epochs, reduction_factor, rungs, objectives


def check_moasha(pruner: dict[str, Any], objectives: list[Any]) -> dict[str, Any]:
    """A normalised ``pruner: {name: moasha, ...}`` checked, with the search's objectives added.

    Raises:
        SearchConfigError: A value MO-ASHA cannot use, naming it and the fix.
    """
    if "objectives" in pruner:
        raise SearchConfigError("pruner moasha: objectives: is not an option; it ranks trials by the search's objectives:")
    eta = pruner.get("reduction_factor", 3)
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta) or eta < 2:
        raise SearchConfigError(f"pruner moasha: reduction_factor {eta!r} is not a number >= 2; e.g. reduction_factor: 3")
    low = pruner.get("min_epochs", 1)
    if isinstance(low, bool) or not isinstance(low, int) or low < 1:
        raise SearchConfigError(f"pruner moasha: min_epochs {low!r} is not a number of epochs; expected an integer >= 1, e.g. 1")
    rungs = pruner.get("rungs")
    if rungs is not None:
        if "min_epochs" in pruner:
            raise SearchConfigError("pruner moasha: give rungs: or min_epochs:, not both")
        if (not isinstance(rungs, list) or not rungs or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rungs)
                or rungs != sorted(set(rungs))):
            raise SearchConfigError(f"pruner moasha: rungs {rungs!r} is not a list of increasing epochs >= 1; e.g. rungs: [1, 3]")
    for objective in objectives:
        if objective.name in NOT_AT_A_RUNG:
            raise SearchConfigError(
                f"pruner moasha: objective {objective.name} is known only when a trial ends, not at a rung; "
                "drop it from objectives: or set pruner: none"
            )
    return {**pruner, "objectives": {o.name: o.direction for o in objectives}}


def check_rungs(pruner: dict[str, Any], resolved: str, where: str) -> None:
    """Refuse MO-ASHA rungs that a trial, with the ``trainer.max_epochs`` of its ``resolved`` fit config, never reaches.

    A rung at the last epoch is refused too: stopping a trial there saves nothing and drops it from the front.

    Raises:
        SearchConfigError: Naming the rung, max_epochs and the fix.
    """
    if pruner.get("name") != "moasha":
        return
    max_epochs = max_epochs_of(resolved)
    key = "rungs" if pruner.get("rungs") else "min_epochs"
    last = pruner["rungs"][-1] if key == "rungs" else pruner.get("min_epochs", 1)
    if max_epochs is not None and last >= max_epochs:
        raise SearchConfigError(
            f"{where}: pruner moasha: the rung at epoch {last} ({key}: {pruner.get(key, 1)}) is not before trainer.max_epochs: "
            f"{max_epochs} (stopping a trial at its last epoch saves nothing); lower {key} or raise trainer.max_epochs in fixed:"
        )


def max_epochs_of(resolved: str) -> int | None:
    """``trainer.max_epochs`` of a resolved fit config (YAML); None when unset or unlimited (-1)."""
    value = ((yaml.safe_load(resolved) or {}).get("trainer") or {}).get("max_epochs")
    return value if isinstance(value, int) and value > 0 else None


def rung_epochs(pruner: dict[str, Any], max_epochs: int | None) -> list[int]:
    """The epochs at which MO-ASHA compares trials: ``rungs``, or ``min_epochs * eta**k``, all before ``max_epochs``."""
    limit = max_epochs if max_epochs is not None and max_epochs > 0 else LIGHTNING_MAX_EPOCHS
    if pruner.get("rungs"):
        return [r for r in pruner["rungs"] if r < limit]
    rungs, rung, eta = [], float(pruner.get("min_epochs", 1)), pruner.get("reduction_factor", 3)
    while round(rung) < limit:
        rungs.append(round(rung))
        rung *= eta
    return rungs


def non_dominated_ranks(points: list[list[float]]) -> list[int]:
    """The front of each point (0 = not dominated), all objectives minimised: Deb et al. 2002's fast non-dominated sort."""
    p = np.asarray(points, dtype=float).reshape(len(points), -1)  # (n, objectives)
    # dominates[i, j]: i is no worse than j in every objective and better in one
    dominates = (p[:, None] <= p[None]).all(axis=2) & (p[:, None] < p[None]).any(axis=2)
    count = dominates.sum(axis=0)  # how many points dominate each one
    ranks, front, level = [0] * len(points), np.flatnonzero(count == 0), 0
    while front.size:
        for i in front:
            ranks[i] = level
        count = count - dominates[front].sum(axis=0)
        count[front] = -1  # ranked: never a front again
        front, level = np.flatnonzero(count == 0), level + 1
    return ranks


def crowding_distances(points: list[list[float]], ranks: list[int]) -> list[float]:
    """Each point's crowding distance within its front (Deb et al. 2002): the ends of a front are infinitely far."""
    distance = [0.0] * len(points)
    for level in set(ranks):
        front = [i for i, r in enumerate(ranks) if r == level]
        for m in range(len(points[0]) if points else 0):
            order = sorted(front, key=lambda i: points[i][m])
            span = points[order[-1]][m] - points[order[0]][m]
            distance[order[0]] = distance[order[-1]] = math.inf
            for before, i, after in zip(order, order[1:-1], order[2:]):
                if span > 0:
                    distance[i] += (points[after][m] - points[before][m]) / span
    return distance


def goes_on(mine: dict[str, float], others: list[dict[str, float]], objectives: dict[str, str], reduction_factor: float) -> bool:
    """True when a trial with values ``mine`` at a rung is promoted among the ``others`` that reached it before.

    ``objectives`` maps each name to maximize/minimize.
    """
    signs = {name: -1.0 if direction == "maximize" else 1.0 for name, direction in objectives.items()}
    points = [[signs[name] * float(values[name]) for name in objectives] for values in [*others, mine]]
    ranks = non_dominated_ranks(points)
    crowding = crowding_distances(points, ranks)
    key = [(r, -c) for r, c in zip(ranks, crowding)]
    ahead = sum(k < key[-1] for k in key[:-1])
    return ahead < max(1, int(len(points) // reduction_factor))


class MOASHA:
    """The rule as the fit's reporter applies it to its trial at the end of every epoch.

    Args:
        pruner: The search's ``pruner:`` as :func:`check_moasha` returned it.
        max_epochs: The fit's ``trainer.max_epochs`` (rungs at or beyond it are dropped).
    """

    def __init__(self, pruner: dict[str, Any], max_epochs: int | None) -> None:
        self.objectives: dict[str, str] = dict(pruner["objectives"])
        self.reduction_factor = pruner.get("reduction_factor", 3)
        self.rungs = rung_epochs(pruner, max_epochs)

    def stops(self, trial: optuna.Trial, epoch: int, history: dict[str, list], epochs: dict[str, list[int]]) -> bool:
        """Record the trial's values at ``epoch`` if it is a rung; True when the trial is not promoted there.

        A trial missing a value at the rung (a metric not logged that epoch, a cost not measured) goes on unranked.
        """
        if epoch not in self.rungs:
            return False
        attrs = trial.user_attrs
        mine = {}
        for name in self.objectives:
            at_epoch = [v for v, e in zip(history.get(name, []), epochs.get(name, [])) if e == epoch]
            value = (at_epoch[-1] if at_epoch else None) if name in history else attrs.get(name)
            if value is None or not math.isfinite(float(value)):
                return False
            mine[name] = float(value)
        recorded = {**attrs.get(RUNG_VALUES, {}), str(epoch): mine}
        trial.set_user_attr(RUNG_VALUES, recorded)
        others = [
            values for t in trial.study.get_trials(deepcopy=False)
            if t._trial_id != trial._trial_id
            and isinstance(values := t.user_attrs.get(RUNG_VALUES, {}).get(str(epoch)), dict)
            and all(isinstance(values.get(name), (int, float)) for name in self.objectives)
        ]
        return not goes_on(mine, others, self.objectives, self.reduction_factor)
