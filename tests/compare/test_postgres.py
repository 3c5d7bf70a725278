"""A comparison whose runs two workers share through a real PostgreSQL server, as on two machines.

(The fresh-interpreter trial process is the search's, tested in tests/search/test_postgres.py.)
"""

from __future__ import annotations

from pathlib import Path

from tests.search.test_postgres import postgres  # noqa: F401 (the fixture: a fresh server, skipped where none can start)

from .helpers import compare, read_csv, start_compare, tiny_comparison


def test_two_workers_on_two_machines_share_a_comparison(tmp_path: Path, postgres: str) -> None:  # noqa: F811
    config = tiny_comparison(tmp_path / "tiny.yaml")
    workers = [
        start_compare("--config", str(config), "--storage", postgres, "--output", "a", cwd=tmp_path),
        start_compare("--config", str(config), "--storage", postgres, "--output", "b", cwd=tmp_path),
    ]
    outs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    started = [line for out in outs for line in out.splitlines() if "(log " in line]
    assert len(started) == 4, outs  # every variant x seed once, over both workers
    summary = compare("--summary", "a", "--storage", postgres, cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    runs = read_csv(tmp_path / "a" / "runs.csv")
    assert sorted((r["variant"], r["seed"], r["state"]) for r in runs) == [
        ("basic", "0", "COMPLETE"), ("basic", "1", "COMPLETE"), ("plain", "0", "COMPLETE"), ("plain", "1", "COMPLETE")]
    assert {Path(r["run_dir"]).parents[2].name for r in runs} <= {"a", "b"}  # each run in its worker's own output
