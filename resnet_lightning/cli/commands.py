"""The commands beside LightningCLI's ``fit``/``validate``/``test``/``predict``, by name.

:func:`resnet_lightning.cli.cli_main` imports a command's module only when it runs, so
``plugins`` starts without importing Lightning. Each module's ``main(argv)`` returns the
exit status (None or 0: success) and raises a :class:`~resnet_lightning.errors.UserError`
for what the user can fix.
"""

# Commands beside LightningCLI's fit/validate/test/predict: name -> (module:function(argv), help).
COMMANDS = {
    "plugins": (
        "resnet_lightning.plugin_status:main",
        "list the installed blocks and architectures, each checked in its own process "
        "(--check: the full plugin contract)",
    ),
    "analyze": (
        "resnet_lightning.analysis.command:main",
        "lesion study, shattered gradients, degradation and gradient-flow plots (PNG + CSV/JSON)",
    ),
    "dashboard": (
        "resnet_lightning.tracking.dashboard:main",
        "save a W&B workspace laying out every metric the framework logs",
    ),
    "search": (
        "resnet_lightning.search.command:main",
        "architecture and hyperparameter search over the registry on Optuna (trials are ordinary fits)",
    ),
    "compare": (
        "resnet_lightning.compare.command:main",
        "train variants side by side over seeds (fit + test each) and report intervals, paired differences and plots",
    ),
    "export": (
        "resnet_lightning.export:main",
        "export a trained checkpoint to ONNX or torch.export (.pt2), checked against the eager model",
    ),
    "lr_find": (
        "resnet_lightning.cli.lr_find:main",
        "find a learning rate (and with --batch_size, a batch size) for a fit's config with Lightning's Tuner; saves the plot",
    ),
    "report": (
        "resnet_lightning.report:main",
        "one self-contained HTML page (images inside, no server) for a run directory or a search's output directory",
    ),
}
