"""Experiment tracking: the run's config as flat keys, W&B setup, resume and dashboards.

Nothing here is needed to train; it makes a W&B run (or any Lightning logger's)
carry the whole configuration, continue across resumes and fall back to offline.
"""

from .config import flatten_config, version_info
from .csv_logger import RunCSVLogger
from .offline import OfflineRun, read_offline_run
from .save_config import LoggerSaveConfigCallback
from .wandb_online import init_or_offline, offline_reason, resolve_wandb_mode, start_wandb_run, start_wandb_runs
from .wandb_settings import WandbSettingError, check_wandb_settings
from .wandb_setup import prepare_wandb_logger, run_names, wandb_resume_id

__all__ = [
    "LoggerSaveConfigCallback",
    "OfflineRun",
    "RunCSVLogger",
    "WandbSettingError",
    "check_wandb_settings",
    "flatten_config",
    "init_or_offline",
    "offline_reason",
    "prepare_wandb_logger",
    "read_offline_run",
    "resolve_wandb_mode",
    "run_names",
    "start_wandb_run",
    "start_wandb_runs",
    "version_info",
    "wandb_resume_id",
]
