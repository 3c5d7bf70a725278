"""Read back what an offline W&B run wrote, with wandb's own reader.

Since wandb 0.2x an offline run directory holds only the binary transaction log
(``run-<id>.wandb``) and media files; ``files/config.yaml`` and
``wandb-summary.json`` are written by the server-side sync, not offline. wandb's
supported reader of that log is ``wandb leet inspect`` (``--json`` for the
records, ``--summary --json`` for the final state), which this module runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class OfflineRun:
    """One W&B run as its transaction log records it.

    Attributes:
        path: The run directory (``.../wandb/offline-run-<time>-<id>``).
        run_id: The W&B run id.
        project: Project name.
        group: Run group ("" when none).
        tags: Run tags.
        job_type: Job type ("" when none).
        config: Final config (flat keys as logged).
        summary: Final summary (last value of each metric, table references).
        history: Logged rows in order (each ``wandb.log`` call).
        artifacts: Logged artifacts (``name``, ``type``, ``aliases``, ``metadata``).
        files: Paths of the run files the log records (``media/...``, ``cli_config.yaml``).
        state: ``"finished"``, ``"running"``, ...
        start_time: When this part of the run started (ISO 8601).
    """

    path: Path
    run_id: str
    project: str
    group: str
    tags: list[str]
    job_type: str
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    files: set[str] = field(default_factory=set)
    state: str = ""
    start_time: str = ""

    def metric_keys(self) -> set[str]:
        """Every key logged to history, wandb's own ``_step``-style keys excluded.

        The reader flattens media values (``test/confusion_matrix._type``, ``.path``,
        ...); they are reported once, under the key they were logged as.
        """
        keys = {k for row in self.history for k in row if not k.startswith("_")}
        media = {k.removesuffix("._type") for k in keys if k.endswith("._type")}
        return {k for k in keys if not any(k.startswith(f"{m}.") for m in media)} | media


def _inspect(run_dir: Path, *flags: str) -> str:
    # An empty WANDB_MODE (as `WANDB_MODE= cmd` leaves it) makes wandb's settings reject the value.
    env = {k: v for k, v in os.environ.items() if not (k == "WANDB_MODE" and not v.strip())}
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", *flags, str(run_dir)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"`wandb leet inspect {' '.join(flags)} {run_dir}` failed: {result.stderr.strip()}")
    return result.stdout


def _parse_value(value: Any) -> Any:
    # History items may carry values as JSON strings ({"value_json": "..."}), depending on the writer.
    if isinstance(value, dict) and set(value) == {"value_json"}:
        return json.loads(value["value_json"])
    return value


def read_offline_run(run_dir: str | Path) -> OfflineRun:
    """Read an offline (or not yet synced) W&B run directory.

    Args:
        run_dir: A run directory holding one ``run-*.wandb`` file.
    """
    run_dir = Path(run_dir)
    if not list(run_dir.glob("run-*.wandb")):
        raise FileNotFoundError(f"{run_dir} holds no run-*.wandb transaction log; pass a wandb/offline-run-* directory")
    final = json.loads(_inspect(run_dir, "--summary", "--json"))
    group, job_type, history, artifacts, files = "", "", [], [], set()
    for line in _inspect(run_dir, "--json").splitlines():
        record = json.loads(line)
        kind = record.get("type")
        body = record.get(kind, {})
        if kind == "run":
            group = body.get("run_group", group)
            job_type = body.get("job_type", job_type)
        elif kind == "history":
            history.append({k: _parse_value(v) for k, v in body.get("item", {}).items()})
        elif kind == "artifact":
            artifacts.append(
                {
                    "name": body.get("name"),
                    "type": body.get("type"),
                    "aliases": body.get("aliases", []),
                    "metadata": json.loads(body["metadata"]) if isinstance(body.get("metadata"), str) else body.get("metadata"),
                }
            )
        elif kind == "files":
            files.update(f["path"] for f in body.get("files", []))
    return OfflineRun(
        path=run_dir,
        run_id=final.get("run_id", ""),
        project=final.get("project", ""),
        group=group,
        tags=list(final.get("tags", [])),
        job_type=job_type,
        config=final.get("config", {}),
        summary=final.get("summary", {}),
        history=history,
        artifacts=artifacts,
        files=files,
        state=final.get("state", ""),
        start_time=final.get("start_time", ""),
    )
