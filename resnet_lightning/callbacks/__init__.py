"""Lightning callbacks: resumability, diagnostics and logging helpers.

The diagnostics are logger-agnostic: scalars go through ``logger.log_metrics``,
figures and tables to W&B media when the logger is W&B and to PNG/CSV files in
the log directory otherwise (see :mod:`resnet_lightning.tracking.outputs`). What they
measure is computed by :mod:`resnet_lightning.analysis`; callbacks call it, never the reverse.
"""

from .epoch_lines import EpochLines
from .error_rate import ErrorRateMonitor
from .finetune import BackboneFreeze
from .gradient_flow import GradientFlowMonitor
from .model_summary import ArchitectureSummary
from .prediction_writer import PredictionWriter
from .residual_stats import ResidualBranchMonitor
from .rng_state import RNGStateCheckpoint
from .run_checkpoint import RunCheckpoint
from .signals import StopOnSignal
from .test_report import TestReport
from .throughput import TrainingThroughput
from .training_started import TrainingStarted

__all__ = [
    "ArchitectureSummary",
    "BackboneFreeze",
    "EpochLines",
    "ErrorRateMonitor",
    "GradientFlowMonitor",
    "PredictionWriter",
    "RNGStateCheckpoint",
    "ResidualBranchMonitor",
    "RunCheckpoint",
    "StopOnSignal",
    "TestReport",
    "TrainingThroughput",
    "TrainingStarted",
]
