"""A comparison's pictures and tables in W&B, when its fits log to W&B.

Each run of a comparison is an ordinary fit with its own W&B run, if its configuration has a
``WandbLogger``. The comparison itself then gets one more run, of job type ``compare``, grouped
under the comparison's name in the loggers' project: ``curves.png`` and ``summary.png`` as
``wandb.Image``, ``summary.csv`` and ``runs.csv`` as ``wandb.Table``. It goes online or offline by the
same rules as a fit (:func:`~resnet_lightning.tracking.wandb_online.resolve_wandb_mode`), with W&B's
banner replaced by one line: the run's page, or its offline directory and how to upload it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..report.compare import comparison_info, read_rows
from .wandb_online import _say_where, init_or_offline, resolve_wandb_mode
from .wandb_setup import _is_wandb_logger

JOB_TYPE = "compare"
IMAGES = {"compare/curves": "curves.png", "compare/summary": "summary.png"}
TABLES = {"compare/summary_table": "summary.csv", "compare/runs_table": "runs.csv"}


def wandb_logger_args(output_dir: str | Path) -> dict[str, Any] | None:
    """The ``init_args`` of the ``WandbLogger`` in the comparison's fit configuration, or None when it has none.

    Read from the ``config.yaml`` of the first run in ``runs.csv`` that has one: every run shares the
    base configs and fixed options, where a logger is configured (a variant sets model options).
    """
    for row in read_rows(Path(output_dir) / "runs.csv"):
        path = Path(str(row.get("run_dir"))) / "config.yaml"
        if row.get("run_dir") and path.is_file():
            loggers = ((yaml.safe_load(path.read_text()) or {}).get("trainer") or {}).get("logger")
            for logger in loggers if isinstance(loggers, list) else [loggers]:
                if isinstance(logger, dict) and _is_wandb_logger(logger.get("class_path")):
                    return dict(logger.get("init_args") or {})
            return None
    return None


def log_comparison_to_wandb(output_dir: str | Path, name: str | None = None, config: dict[str, Any] | None = None) -> Path | None:
    """Log the comparison's pictures and tables to one W&B run, when its fits have a ``WandbLogger``.

    Call after the comparison has written its outputs. The run has job type ``compare``, the
    comparison's name as group and name, and the fits' logger's project and entity (a logger set
    ``offline: true`` keeps it offline); its files go to ``<output_dir>/wandb/``.

    Args:
        output_dir: The comparison's output directory (``runs.csv``, ``summary.csv``, ``curves.png``, ``summary.png``).
        name: The comparison's name (default: the one its journal holds, else the directory's name).
        config: The run's config (default: the comparison from its journal: variants, fixed options, configs, ...).

    Returns:
        The W&B run's local directory (``<output_dir>/wandb/<offline->run-...``), or None when nothing was logged
        (no ``WandbLogger`` in the fits' configuration, ``WANDB_MODE=disabled``, or no output to log yet).

    Raises:
        WandbSettingError: A ``WANDB_*`` variable or logger setting that wandb rejects.
    """
    output = Path(output_dir)
    logger = wandb_logger_args(output)
    images = {key: output / file for key, file in IMAGES.items() if (output / file).is_file()}
    if logger is None or not images:
        return None
    if resolve_wandb_mode(save_dir=output) == "disabled":
        return None
    import wandb

    info = comparison_info(output) if name is None or config is None else None
    name = name or (info or {}).get("name") or output.resolve().name
    init = {key: logger[key] for key in ("project", "entity") if logger.get(key)}
    if logger.get("offline"):
        init["mode"] = "offline"
    run = init_or_offline(**init, job_type=JOB_TYPE, group=name, name=name, tags=[JOB_TYPE],
                          config=config if config is not None else (info or {}), dir=str(output.resolve()),
                          settings=wandb.Settings(silent=True))  # W&B's banner: the one line below says where the run is
    try:
        logged: dict[str, Any] = {key: wandb.Image(str(path)) for key, path in images.items()}
        for key, file in TABLES.items():
            rows = read_rows(output / file)
            if rows:
                logged[key] = wandb.Table(columns=list(rows[0]), data=[list(row.values()) for row in rows])
        run.log(logged)
        _say_where(run)
        return Path(run.dir).parent
    finally:
        run.finish()
