"""``resnet-lightning dashboard``: a saved W&B workspace laying out every panel the framework logs.

Every panel names keys the framework really logs (checked by the tests against
a real offline run): the LightningModule's ``train/*``, ``val/*``, ``test/*``,
the LearningRateMonitor's ``lr-*``, and the callbacks' ``grad_norm/*``,
``residual_ratio/*``, ``*/error`` and media keys. Saving needs a W&B account and
network (``pip install wandb-workspaces``); offline the workspace is built and
described but not saved.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import CommandParser, UserError

# Keys as logged (Lightning appends _step/_epoch to a metric logged both ways).
TRAINING = {
    "loss": ["train/loss_step"],
    "epoch loss": ["train/loss_epoch", "val/loss"],
    "accuracy": ["train/acc", "val/acc"],
    "top-5 accuracy": ["train/acc_top5", "val/acc_top5"],
}
ERROR = ["train/error", "val/error"]
TEST_SCALARS = ["test/acc", "test/acc_top5", "test/loss"]
TEST_MEDIA = ["test/confusion_matrix", "test/misclassified_grid"]
TEST_TABLES = ["test/misclassified", "test/confusion_matrix_table"]
DIAGNOSTIC_MEDIA = ["diagnostics/gradient_flow", "diagnostics/residual_ratio"]
DIAGNOSTIC_TABLES = ["diagnostics/gradient_flow_table", "diagnostics/residual_ratio_table"]
REGEXES = {"learning rate": "^lr-", "gradient norm per block": "^grad_norm/", "||F(x)|| / ||x|| per block": "^residual_ratio/"}
STEP = "trainer/global_step"


def flat_config_key(key: str) -> str:
    """The W&B backend path of a *flat* dotted config key (``model.arch`` -> ``model.arch.value``).

    W&B stores ``config["model.arch"]`` as ``{"model.arch": {"value": ...}}``;
    without the explicit ``.value`` suffix wandb-workspaces would assume a nested
    ``{"model": {"value": {"arch": ...}}}`` and the panel would find nothing.
    """
    return f"{key}.value"


def build_workspace(entity: str, project: str, name: str = "resnet-lightning") -> Any:
    """The workspace object (nothing is sent).

    Args:
        entity: W&B entity (user or team).
        project: W&B project.
        name: The saved view's name.
    """
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    training = [wr.LinePlot(title=title, x=STEP, y=keys) for title, keys in TRAINING.items()]
    training.append(wr.LinePlot(title="learning rate", x=STEP, metric_regex=REGEXES["learning rate"]))
    degradation = [
        wr.LinePlot(title="train error by architecture (dashed in the paper)", x=STEP, y=[ERROR[0]], groupby=flat_config_key("model.arch")),
        wr.LinePlot(title="validation error by architecture", x=STEP, y=[ERROR[1]], groupby=flat_config_key("model.arch")),
        wr.MarkdownPanel(
            markdown="He et al. 2015, Fig. 1/6: the deeper **plain** net has the higher *training* error; "
            "the deeper **residual** net the lower. Filter runs by tag `experiment:degradation`."
        ),
    ]
    diagnostics = [
        wr.LinePlot(title=title, x=STEP, metric_regex=regex, log_y=title.startswith("gradient"))
        for title, regex in REGEXES.items() if title != "learning rate"
    ]
    diagnostics.append(wr.MediaBrowser(title="over depth, end of fit", media_keys=DIAGNOSTIC_MEDIA))
    test = [wr.ScalarChart(title=key, metric=key, groupby_aggfunc="mean") for key in TEST_SCALARS]
    test.append(wr.MediaBrowser(title="confusion matrix and misclassified samples", media_keys=TEST_MEDIA))
    test += [wr.WeavePanelSummaryTable(table_name=key) for key in TEST_TABLES]
    models: list[Any] = [
        wr.ScatterPlot(
            # Summary metrics, not config: scatter axes cannot address flat dotted config keys.
            title=f"validation accuracy vs {what}", x=wr.SummaryMetric(f"model/{what}"),
            y=wr.SummaryMetric("val/acc"), log_x=True,
        )
        for what in ("parameters", "macs")
    ]
    models.append(wr.RunComparer(diff_only="split"))
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name,
        sections=[
            ws.Section(name="Training", panels=training, is_open=True),
            ws.Section(name="Degradation (He et al. 2015)", panels=degradation),
            ws.Section(name="Diagnostics: gradient flow and residual branches", panels=diagnostics),
            ws.Section(name="Test", panels=test),
            ws.Section(name="Models", panels=models),
        ],
        settings=ws.WorkspaceSettings(x_axis=STEP, group_by_prefix="first"),
        runset_settings=ws.RunsetSettings(groupby=[ws.Config(flat_config_key("model.arch"))]),
    )


def panel_keys(workspace: Any) -> tuple[set[str], set[str]]:
    """``(keys, regexes)`` every panel of the workspace reads (configs and summaries excluded)."""
    import wandb_workspaces.reports.v2 as wr

    keys: set[str] = set()
    regexes: set[str] = set()
    for section in workspace.sections:
        for panel in section.panels:
            for attribute in ("y", "media_keys", "metric", "table_name"):
                values = getattr(panel, attribute, None)
                for value in values if isinstance(values, list) else [values]:
                    name = getattr(value, "name", value)  # wr.SummaryMetric("val/acc") reads a metric too
                    if isinstance(name, str) and name and not isinstance(value, wr.Config):
                        keys.add(name)
            if getattr(panel, "metric_regex", None):
                regexes.add(panel.metric_regex)
    return keys, regexes


def main(argv: list[str]) -> None:
    """``resnet-lightning dashboard --project X [--entity E] [--name N]``.

    Args:
        argv: The arguments after ``dashboard``.
    """
    parser = CommandParser(prog="resnet-lightning dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--project", required=True, help="W&B project, e.g. resnet-lightning-cifar10")
    parser.add_argument("--entity", default=os.environ.get("WANDB_ENTITY"), help="W&B entity (default: your default entity)")
    parser.add_argument("--name", default="resnet-lightning", help="name of the saved workspace view")
    args = parser.parse_args(argv)
    try:
        import wandb_workspaces  # noqa: F401
    except ImportError:
        raise UserError("dashboard: needs wandb-workspaces; pip install wandb-workspaces") from None
    from .wandb_online import offline_reason

    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    reason = f"WANDB_MODE={mode}" if mode and mode != "online" else offline_reason()
    entity = args.entity
    if reason is None and entity is None:
        import wandb

        entity = wandb.Api().default_entity
    workspace = build_workspace(entity or "offline", args.project, args.name)
    sections = ", ".join(f"{s.name} ({len(s.panels)} panels)" for s in workspace.sections)
    if reason is not None:
        print(
            f"resnet-lightning dashboard: {reason}, so the workspace was built but not saved: {sections}. "
            f"Run again with an API key (`wandb login`) and network to save it to {args.project}."
        )
        return
    workspace.save()
    print(f"saved workspace {args.name!r}: {workspace.url}")
