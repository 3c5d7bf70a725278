"""``python -m benchmarks`` writes to an output directory and leaves the tracked files alone.

The timings themselves are never asserted (benchmarks/README.md): these tests check where the
results go. Only ``--update-readme`` writes ``benchmarks/results/*.json`` and ``benchmarks/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import OUTPUT_DIR, RESULTS_DIR, output_dir

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _snapshot() -> dict[str, tuple[str, int]]:
    """Every file under benchmarks/ (results, README, plot, ...): its content hash and mtime."""
    return {
        str(path.relative_to(BENCHMARKS)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(BENCHMARKS.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def _benchmarks(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # From another directory, as a user in a scratch folder would; the checkout on the path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_run_writes_its_results_to_the_output_directory_and_nothing_under_benchmarks(tmp_path: Path) -> None:
    before = _snapshot()
    done = _benchmarks("overhead", "--quick", "--threads", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _snapshot() == before, "python -m benchmarks changed files under benchmarks/ without --update-readme"
    result = json.loads((tmp_path / "benchmarks-out" / "quick" / "overhead.json").read_text())
    assert result["benchmark"] == "overhead" and result["quick"] is True
    assert done.stdout.rstrip().splitlines()[-1].startswith("Results in benchmarks-out/quick/ (tracked files untouched")


def test_update_readme_with_quick_is_a_one_line_error(tmp_path: Path, monkeypatch, capsys) -> None:
    from benchmarks.__main__ import main

    monkeypatch.chdir(tmp_path)
    before = _snapshot()
    with pytest.raises(SystemExit) as exit_:
        main(["--quick", "--update-readme"])
    assert exit_.value.code == 2
    message = "python -m benchmarks: error: --update-readme needs a full run: --quick results measure nothing"
    assert capsys.readouterr().err.splitlines()[-1] == message
    assert _snapshot() == before and not (tmp_path / "benchmarks-out").exists()


def test_output_directory_defaults(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert output_dir(None) == tmp_path / OUTPUT_DIR
    assert output_dir(None, quick=True) == tmp_path / OUTPUT_DIR / "quick"
    assert output_dir(None, update_readme=True) == RESULTS_DIR
    assert output_dir(Path("mine"), quick=True) == tmp_path / "mine"  # a directory given is used as it is
    assert output_dir(Path("mine"), update_readme=True) == tmp_path / "mine"


def test_the_old_flags_still_parse() -> None:
    from benchmarks.__main__ import _parser

    parser = _parser()
    old = parser.parse_args(["overhead", "--results", "somewhere", "--no-readme"])
    assert old.output == Path("somewhere") and not old.update_readme
    assert parser.parse_args(["--results", "there", "gpu"]).output == Path("there")
