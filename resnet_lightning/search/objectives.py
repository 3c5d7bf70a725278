"""What a search optimises: metrics the fit logs, and what the network costs.

``objectives:`` in SEARCH.yaml maps names to directions, in order::

    objectives:
      val/acc: maximize     # any metric the fit logs; its best epoch counts
      macs: minimize        # multiply-accumulates per image (count_macs at the data's input size)

Besides logged metrics there are four measures of cost: ``macs``, ``params``
(parameter count) and ``latency_ms`` (median forward time of a batch on the
search's device), measured before the fit (see :mod:`.costs`), and ``wall_time``
(seconds the trial took, start-up included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .space import SearchConfigError

MEASURES = ("macs", "params", "latency_ms", "wall_time")
DIRECTIONS = ("maximize", "minimize")


class MissingMetricError(RuntimeError):
    """A trial finished without logging an objective's metric."""


@dataclass(frozen=True)
class Objective:
    """One objective: a logged metric (best epoch) or a measure, and its direction."""

    name: str
    direction: str

    @property
    def is_metric(self) -> bool:
        """True for a metric the fit logs (as opposed to macs/params/latency_ms/wall_time)."""
        return self.name not in MEASURES

    def value(self, attrs: dict[str, Any]) -> float:
        """This objective's value from a finished trial's user attributes (see :mod:`.reporter`).

        Raises:
            MissingMetricError: The fit never logged the metric (the message lists what it logged).
        """
        if not self.is_metric:
            if attrs.get(self.name) is None:
                raise MissingMetricError(f"the trial never measured {self.name} (it stopped before its first batch)")
            return float(attrs[self.name])
        history = [v for v in attrs.get("history", {}).get(self.name, []) if v is not None]
        if not history:
            logged = ", ".join(attrs.get("logged_metrics", [])) or "nothing"
            raise MissingMetricError(f"objective {self.name!r} was never logged by the fit (it logged: {logged})")
        return max(history) if self.direction == "maximize" else min(history)


def parse_objectives(spec: Any) -> list[Objective]:
    """``{val/acc: maximize, macs: minimize}`` -> objectives, in order.

    Raises:
        SearchConfigError: An empty mapping or a direction other than maximize/minimize.
    """
    if isinstance(spec, str):
        spec = {spec: "maximize"}
    if not isinstance(spec, dict) or not spec:
        raise SearchConfigError(
            f"objectives: {spec!r} is not a mapping of metric to direction; e.g. objectives: {{val/acc: maximize, macs: minimize}}"
        )
    objectives = []
    for name, direction in spec.items():
        if direction not in DIRECTIONS:
            raise SearchConfigError(f"objectives.{name}: direction {direction!r} is not maximize or minimize")
        objectives.append(Objective(str(name), direction))
    return objectives
