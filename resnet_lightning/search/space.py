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
"""

from __future__ import annotations

import json
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

TYPES = ("categorical", "int", "float")
FIELDS = {"categorical": {"type", "choices"}, "int": {"type", "low", "high", "step", "log"}, "float": {"type", "low", "high", "step", "log"}}
EXAMPLE = "e.g. model.optimizer.init_args.lr: {type: float, low: 0.01, high: 0.3, log: true}"


class SearchConfigError(ValueError):
    """SEARCH.yaml asks for something that cannot be searched; the message names it and the fix."""


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
        return CategoricalDistribution(choices)
    missing = [field for field in ("low", "high") if field not in spec]
    if missing:
        raise SearchConfigError(f"space.{key}: type {kind} needs 'low' and 'high' (missing {missing[0]!r}); {EXAMPLE}")
    number = int if kind == "int" else (int, float)
    for field in ("low", "high", "step"):
        value = spec.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, number)):
            raise SearchConfigError(f"space.{key}: {field}={value!r} is not {'an integer' if kind == 'int' else 'a number'}")
    try:
        if kind == "int":
            return IntDistribution(spec["low"], spec["high"], log=bool(spec.get("log", False)), step=spec.get("step") or 1)
        return FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)), step=spec.get("step"))
    except ValueError as err:  # Optuna's own check: low <= high, log needs low > 0, not both step and log
        raise SearchConfigError(f"space.{key}: {err}") from None


def parse_space(space: Any) -> dict[str, BaseDistribution]:
    """The whole ``space:`` mapping as ``{dotted key: distribution}``."""
    if not isinstance(space, dict) or not space:
        raise SearchConfigError(f"'space' must map dotted fit options to distributions; {EXAMPLE}")
    return {str(key): distribution(str(key), spec) for key, spec in space.items()}


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
    """Draw one value per dimension through the trial's ``suggest_*`` methods."""
    values: dict[str, Any] = {}
    for key, dist in space.items():
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
