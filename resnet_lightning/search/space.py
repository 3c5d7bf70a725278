"""The search space: dotted ``fit`` options mapped to Optuna distributions.

In SEARCH.yaml the space is written the way a command line is, one dotted
``fit`` key per dimension (the key a W&B agent would pass as ``--key=value``)::

    space:
      model.block: {type: categorical, choices: [basic, preact, plain, highway]}
      model.arch_kwargs.depth: {type: categorical, choices: [8, 20, 32, 56]}
      model.optimizer.init_args.lr: {type: float, low: 0.01, high: 0.3, log: true}

Each entry becomes one Optuna distribution (the fields are those of
``optuna.distributions``), and a trial's parameters become ``--key=value``
arguments of an ordinary ``resnet-lightning fit``.

A dimension with ``when:`` exists only in trials where an earlier dimension took
one of the given values (Optuna samples define-by-run, so it is simply not asked)::

    model.block_kwargs.gate_bias: {type: float, low: -3, high: 0, when: {model.block: highway}}
    model.arch_kwargs.blocks.1: {type: categorical, choices: [basic, se_basic], when: {model.arch_kwargs.layers.1: [2, 3]}}
"""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ..errors import UserError, did_you_mean, one_line

TYPES = ("categorical", "int", "float")
FIELDS = {"categorical": {"type", "choices"}, "int": {"type", "low", "high", "step", "log"}, "float": {"type", "low", "high", "step", "log"}}
EXAMPLE = "e.g. model.optimizer.init_args.lr: {type: float, low: 0.01, high: 0.3, log: true}"


class SearchConfigError(UserError, ValueError):
    """SEARCH.yaml (or a search option) asks for something that cannot be searched; the message names it and the fix.

    A mistake in what the user wrote, so it exits 2 as the command line's mistakes do
    (its message is not about the command line, so it keeps the command's name in front).
    """

    exit_code = 2


def distribution(key: str, spec: Any) -> BaseDistribution:
    """One ``space:`` entry as an Optuna distribution.

    Args:
        key: The dotted ``fit`` option, e.g. ``model.arch_kwargs.depth``.
        spec: Its mapping, e.g. ``{type: int, low: 8, high: 56, step: 6}``.

    Raises:
        SearchConfigError: Naming the key, the bad field or value, and what is expected.
    """
    if key.startswith("-") or not key.replace(".", "").replace("_", "").isalnum():
        raise SearchConfigError(f"space key {key!r}: expected a dotted fit option without dashes, like model.block")
    if not isinstance(spec, dict) or spec.get("type") not in TYPES:
        got = spec.get("type") if isinstance(spec, dict) else spec
        raise SearchConfigError(f"space.{key}: type {got!r} is not one of {', '.join(TYPES)}; {EXAMPLE}")
    kind = spec["type"]
    unknown = sorted(set(spec) - FIELDS[kind])
    if unknown:
        raise SearchConfigError(
            f"space.{key}: unknown field {unknown[0]!r} for type {kind}; its fields are {', '.join(sorted(FIELDS[kind]))}"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SearchConfigError(f"space.{key}: categorical needs a non-empty list 'choices', e.g. choices: [basic, plain]")
        bad = [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]
        if bad:
            raise SearchConfigError(
                f"space.{key}: choice {bad[0]!r} is not a number, string, boolean or null (Optuna's categorical values); "
                "search a nested option through its own dotted key instead"
            )
        twice = [c for i, c in enumerate(choices) if choices.index(c) != i]
        if twice:
            raise SearchConfigError(f"space.{key}: choice {twice[0]!r} is given twice (or equals another choice); list each once")
        return CategoricalDistribution(choices)
    missing = [field for field in ("low", "high") if field not in spec]
    if missing:
        raise SearchConfigError(f"space.{key}: type {kind} needs 'low' and 'high' (missing {missing[0]!r}); {EXAMPLE}")
    number = int if kind == "int" else (int, float)
    for field in ("low", "high", "step"):
        value = spec.get(field)
        if (value is not None or field != "step") and (isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value)):
            raise SearchConfigError(
                f"space.{key}: {field}={value!r} is not {'an integer' if kind == 'int' else 'a finite number'}; {EXAMPLE}"
            )
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise SearchConfigError(f"space.{key}: log={log!r} is not true or false")
    if low > high:
        raise SearchConfigError(f"space.{key}: low={low} is above high={high}; swap them")
    if step is not None and step <= 0:
        raise SearchConfigError(f"space.{key}: step={step} is not positive; give a step > 0, or leave it out for any value")
    if log and low <= 0:
        raise SearchConfigError(f"space.{key}: log: true needs low > 0 (got low={low}); raise low or set log: false")
    if log and step is not None:
        raise SearchConfigError(f"space.{key}: step and log: true cannot be combined (Optuna's rule); drop one of them")
    if step is not None and not _on_grid(low, high, step):
        raise SearchConfigError(
            f"space.{key}: high={high} is not low={low} plus a whole number of steps of {step}; "
            f"e.g. high: {_last_step(low, high, step)}"
        )
    if kind == "int":
        return IntDistribution(low, high, log=log, step=1 if step is None else step)
    return FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))


def _on_grid(low: float, high: float, step: float) -> bool:
    n = (high - low) / step
    return abs(n - round(n)) <= 1e-8 * max(1.0, abs(n))


def _last_step(low: float, high: float, step: float) -> float:
    value = low + math.floor((high - low) / step + 1e-8) * step
    return value if isinstance(low, int) and isinstance(step, int) else round(value, 12)


def contains(dist: BaseDistribution, value: Any) -> bool:
    """Whether ``dist`` can draw ``value`` (in range, on its step; one of its choices)."""
    if isinstance(value, bool) and not isinstance(dist, CategoricalDistribution):
        return False
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))  # Optuna's own test, as enqueue_trial applies it
    except (TypeError, ValueError):
        return False


def describe(dist: BaseDistribution) -> str:
    """``choices: basic, plain`` or ``0.01 to 0.3, log`` for messages."""
    if isinstance(dist, CategoricalDistribution):
        return "choices: " + ", ".join(map(str, dist.choices))
    plain = dist.step is None or (isinstance(dist, IntDistribution) and dist.step == 1)
    step = "" if plain else f", step {dist.step}"
    return f"{dist.low} to {dist.high}{step}{', log' if dist.log else ''}"


class Space(dict[str, BaseDistribution]):
    """``{dotted key: distribution}`` in the file's order, and each conditional dimension's ``when:``.

    Attributes:
        conditions: ``{key: {earlier key: [values]}}``: ``key`` is drawn only in trials
            where every earlier key took one of its values.
    """

    def __init__(self, dimensions: dict[str, BaseDistribution], conditions: dict[str, dict[str, list[Any]]] | None = None) -> None:
        super().__init__(dimensions)
        self.conditions = conditions or {}

    def applies(self, key: str, values: dict[str, Any]) -> bool:
        """Whether ``key`` is a dimension of a trial whose other parameters are ``values``."""
        return all(k in values and _among(values[k], allowed) for k, allowed in self.conditions.get(key, {}).items())


def _among(value: Any, allowed: list[Any]) -> bool:
    return any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed)  # True is not 1 here


def parse_space(space: Any) -> Space:
    """The whole ``space:`` mapping as ``{dotted key: distribution}``, with the conditions of its ``when:`` entries."""
    if not isinstance(space, dict) or not space:
        raise SearchConfigError(f"'space' must map dotted fit options to distributions; {EXAMPLE}")
    dimensions: dict[str, BaseDistribution] = {}
    conditions: dict[str, dict[str, list[Any]]] = {}
    for key, spec in space.items():
        key = str(key)
        if isinstance(spec, dict) and "when" in spec:
            conditions[key] = _condition(key, spec["when"], dimensions, [str(k) for k in space])
            spec = {k: v for k, v in spec.items() if k != "when"}
        dimensions[key] = distribution(key, spec)
    return Space(dimensions, conditions)


def _condition(key: str, when: Any, earlier: dict[str, BaseDistribution], keys: list[str]) -> dict[str, list[Any]]:
    """``when: {model.block: highway}`` (or ``[highway, plain]``) checked against the dimensions before ``key``."""
    example = "e.g. when: {model.block: highway} or when: {model.block: [highway, plain]}"
    if not isinstance(when, dict) or not when:
        raise SearchConfigError(f"space.{key}: when: {when!r} is not a mapping of an earlier dimension to its values; {example}")
    condition = {}
    for on, values in when.items():
        on = str(on)
        if on not in earlier:
            where = "comes after it" if on in keys else "is not a dimension of space:"
            hint = "" if on in keys else did_you_mean(repr(on), map(repr, earlier))
            raise SearchConfigError(one_line(
                f"space.{key}: when: {on} {where}", hint, "a condition names a dimension listed before it; move that dimension up"
            ))
        values = values if isinstance(values, list) else [values]
        bad = [v for v in values if not contains(earlier[on], v)]
        if bad or not values:
            raise SearchConfigError(
                f"space.{key}: when: {on}: {bad[0] if bad else values!r} is not a value space.{on} can take "
                f"({describe(earlier[on])}); name values it can take"
            )
        condition[on] = values
    return condition


def check_conditions(space: dict[str, BaseDistribution], sampler: str, enqueue: list[dict[str, Any]]) -> None:
    """Refuse what conditional dimensions cannot work with: the grid sampler, and an enqueued trial against its condition.

    Raises:
        SearchConfigError: Naming the dimension and the fix.
    """
    conditions = getattr(space, "conditions", {})
    if conditions and sampler == "grid":
        raise SearchConfigError(
            f"space.{next(iter(conditions))}: the grid sampler takes every combination of every dimension and cannot "
            "leave one out (when:); use sampler: random, tpe or nsga2, or drop when:"
        )
    for params in enqueue:
        for key in params:
            cond = conditions.get(key, {})
            if all(k in params for k in cond) and not space.applies(key, params):
                held = ", ".join(f"{k}={params[k]!r}" for k in cond)
                raise SearchConfigError(
                    f"enqueue: {key} is given in an entry where its condition does not hold ({held}; when: {cond}); "
                    "drop it from that entry"
                )


def grid(space: dict[str, BaseDistribution]) -> dict[str, list[Any]]:
    """Every value of every dimension, for Optuna's GridSampler (which needs finite choices)."""
    values = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            values[key] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            n = int(round((dist.high - dist.low) / dist.step))
            values[key] = [round(dist.low + i * dist.step, 12) for i in range(n + 1)]
        else:
            raise SearchConfigError(
                f"space.{key}: the grid sampler needs finite values; give it 'choices' (categorical) or a 'step'"
            )
    return values


def suggest(trial: optuna.Trial, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """Draw one value per dimension through the trial's ``suggest_*`` methods (those whose ``when:`` holds)."""
    values: dict[str, Any] = {}
    applies = getattr(space, "applies", lambda key, values: True)  # a plain dict has no conditions
    for key, dist in space.items():
        if not applies(key, values):
            continue  # define-by-run: a dimension whose condition does not hold is never asked for
        if isinstance(dist, CategoricalDistribution):
            values[key] = trial.suggest_categorical(key, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[key] = trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            values[key] = trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return values


def cli_args(values: dict[str, Any]) -> list[str]:
    """``{"model.arch_kwargs.depth": 56}`` -> ``["--model.arch_kwargs.depth=56"]``, as a W&B agent passes them.

    Strings go as they are; everything else as JSON (a YAML subset, which is how
    the CLI parses values), so ``None`` becomes ``null`` and ``True`` ``true``.
    """
    return [f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in values.items()]
