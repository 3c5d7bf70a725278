"""A configuration the sampler draws again is not trained again.

Samplers draw a configuration the study already holds, often in a small categorical
space: neither TPE nor NSGA-II avoids repeats (Optuna's FAQ, "How can I ignore
duplicated samples?", answers by looking the parameters up among the finished trials).
A trial's fit is set by its options, the seed among them, so training the same
options again spends its epochs to learn what the study knows. Measured on the
benchmark's 32-configuration space (``benchmarks/search_front.py``), 13 of 17 trials
a TPE search trained in full were repeats before this.

The repeat takes its twin's outcome without a fit: a completed twin's values (a
COMPLETE trial), a twin's stop at a rung (a PRUNED trial), recorded with ``same_as``
(the twin's number) and ``epochs: 0``. A twin that is still running, or that failed,
is not reused: the trial trains. Nor is an over-budget twin: the budget may have
been raised since (the same command with a new ``constraints:`` continues the
study), so the repeat's costs are checked again, which takes a fraction of a second.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

SAME_AS = "same_as"  # the user attribute naming the trial whose outcome a repeat took
# What a repeat copies from its twin besides the values: its costs, its run and what its fit recorded.
COPIED = ("macs", "params", "latency_ms", "pruned_at_epoch", "run_dir", "history", "history_epochs",
          "logged_metrics")


def earlier_twin(trial: optuna.Trial) -> FrozenTrial | None:
    """The finished trial (COMPLETE or PRUNED) of ``trial``'s study that trained ``trial``'s parameters, if any.

    Repeats are skipped: each took its outcome from such a trial, which is found instead.
    """
    params = trial.params
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if other.params == params and SAME_AS not in other.user_attrs and "over_budget" not in other.user_attrs:
            return other
    return None


def take_outcome(trial: optuna.Trial, twin: FrozenTrial) -> dict[str, Any]:
    """Record ``twin``'s costs and outcome on ``trial``; returns the attributes copied."""
    copied = {key: twin.user_attrs[key] for key in COPIED if key in twin.user_attrs}
    for key, value in {**copied, SAME_AS: twin.number, "epochs": 0, "wall_time": 0.0}.items():
        trial.set_user_attr(key, value)
    return copied
