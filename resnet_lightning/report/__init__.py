"""``resnet-lightning report PATH``: one self-contained HTML page for a run, a search or a comparison.

The page holds its images (PNG ``data:`` URIs) and no script: it opens from a laptop or a
cluster's shared disk with no server and no network. Plots are matplotlib figures drawn
without pyplot. A fit writes its run's page when it ends
(:class:`~resnet_lightning.callbacks.run_report.RunReport`; ``--report false`` turns it off).
"""

from .command import ReportError, main, write_report

__all__ = ["ReportError", "main", "write_report"]
