"""The ``report`` command: which kind of page a directory gets (a run, a search, a comparison), and where it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..console import tell
from ..errors import CommandParser, UserError, one_line
from ..storage import write_atomically
from .compare import compare_report, is_compare
from .run import REPORT_FILE, is_run, run_report
from .search import is_search, search_report

PROG = "resnet-lightning report"


class ReportError(UserError, FileNotFoundError):
    """PATH is not a run directory, nor a search's or a comparison's output directory."""


def write_report(path: str | Path, output: str | Path | None = None, **run_details: Any) -> Path:
    """Write the report of the run, search or comparison in ``path`` (default ``<path>/report.html``); its path.

    Args:
        path: A run directory (``<root>/<name>/version_N``), or a search's or a comparison's ``--output`` directory.
        output: The HTML file to write.
        run_details: For a run, passed to :func:`~resnet_lightning.report.run.run_report` (summary, device).
    """
    directory = Path(path)
    if is_compare(directory):  # before is_search: a comparison's directory holds a study journal too
        text = compare_report(directory)
    elif is_search(directory):
        text = search_report(directory)
    elif is_run(directory):
        text = run_report(directory, **run_details)
    else:
        raise ReportError(_not_a_report_dir(directory))
    target = Path(output) if output is not None else directory / REPORT_FILE
    write_atomically(target, text.encode())
    return target


def _not_a_report_dir(directory: Path) -> str:
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        return one_line(f"{directory} {what}", "give a run directory (<root>/<run name>/version_N) "
                        "or a search's --output directory")
    versions = sorted(p for p in directory.glob("version_*") if is_run(p))
    if versions:
        return one_line(f"{directory} holds runs, not one run", f"did you mean {versions[-1]}?",
                        f"runs: {', '.join(p.name for p in versions)}")
    return one_line(f"{directory} is neither a run directory (config.yaml, metrics.csv, run.json) "
                    "nor a search's output directory (trials.csv, pareto.csv, study.journal) "
                    "nor a comparison's (summary.csv, runs.csv)",
                    "give the directory a fit, a search or a comparison wrote")


def main(argv: list[str] | None = None) -> int:
    """``resnet-lightning report PATH [--output FILE]``; returns the exit status."""
    parser = CommandParser(
        prog=PROG,
        description="Write one self-contained HTML page (images inside, no server, no network) for a run, a search or a comparison.",
    )
    parser.add_argument("path", type=Path, metavar="PATH",
                        help="a run directory (<root>/<run name>/version_N), or a search's or a comparison's --output directory")
    parser.add_argument("--output", type=Path, metavar="FILE", help="the HTML file to write (default: PATH/report.html)")
    args = parser.parse_args(argv)
    tell(f"report: {write_report(args.path, args.output)}")
    return 0
