"""Rewrite the measured parts of ``benchmarks/README.md``: the text between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` for each benchmark that ran."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from benchmarks import BENCHMARKS
from benchmarks.common import BENCH_DIR, machine_line

README = BENCH_DIR / "README.md"


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the part between ``name``'s markers replaced by ``body``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{README} has no '{start}' ... '{end}' markers for {name!r}; add them where its table goes")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body.strip()}\n{end}{tail}"


def update_readme(results: dict[str, dict[str, Any]], suite_seconds: float | None = None, path: Path = README) -> None:
    """Put each result's table, and the machine it came from, into its README section."""
    text = path.read_text()
    for name, result in results.items():
        table = importlib.import_module(BENCHMARKS[name]).table(result)
        stamp = f"_Measured on {machine_line(result['machine'])}; took {result['wall_seconds']:.0f} s._"
        text = replace_section(text, name, f"{stamp}\n\n{table}")
    if suite_seconds is not None:
        machine = next(iter(results.values()))["machine"]
        text = replace_section(
            text, "suite", f"Last full run: `python -m benchmarks` took **{suite_seconds / 60:.1f} min** "
            f"({suite_seconds:.0f} s) on {machine['cpu']} with {machine['torch_threads']} torch threads, "
            f"{machine['date']}."
        )
    path.write_text(text)
