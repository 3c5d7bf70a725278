"""Speed and memory benchmarks of resnet-lightning (``python -m benchmarks``; see README.md).

Measured here, never asserted in tests: timings depend on the machine and its load.
"""

# name -> module, in the order the suite runs them.
BENCHMARKS = {
    "overhead": "benchmarks.overhead",
    "parity": "benchmarks.parity",
    "data": "benchmarks.data_pipeline",
    "scaling": "benchmarks.scaling",
    "gpu": "benchmarks.gpu",
    "recipes": "benchmarks.recipes",
    "search": "benchmarks.search",
    "house": "benchmarks.house",
    "report": "benchmarks.report",
    "search_front": "benchmarks.search_front",
}
