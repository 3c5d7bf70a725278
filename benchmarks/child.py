"""``python -m benchmarks.child module:function '{"kwarg": ...}'``: one measurement in a fresh process.

Prints the function's result (a JSON-serialisable dict) as the last line of
stdout; see :func:`benchmarks.common.run_child`.
"""

from __future__ import annotations

import importlib
import json
import sys


def main(argv: list[str]) -> None:
    target, kwargs = argv[0], json.loads(argv[1])
    module_name, function = target.split(":")
    result = getattr(importlib.import_module(module_name), function)(**kwargs)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
