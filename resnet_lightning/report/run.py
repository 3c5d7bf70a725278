"""One run's report: what was trained, how it learned, how it tested, on what.

Everything is read from the run directory (:mod:`resnet_lightning.runs` lays it out):
``config.yaml``, ``hparams.yaml`` (its ``versions.*``), ``run.json``, ``metrics.csv``,
``model_summary.json``, ``test/version_*/metrics.csv`` and every PNG the callbacks and
analyses left under it (confusion matrix, residual ratios, gradient flow, lesion, ...).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from .. import runs
from . import html
from .curves import curves_figure, final_values, read_metrics

REPORT_FILE = "report.html"
SKIPPED_DIRS = {runs.CHECKPOINT_DIR, "media"}  # W&B's media/ holds copies of the PNGs beside it


def is_run(directory: Path) -> bool:
    """Whether ``directory`` looks like a fit's run directory."""
    return any((directory / name).is_file() for name in (runs.RUN_FILE, "config.yaml", "metrics.csv"))


def run_report(run_dir: Path, summary: dict[str, Any] | None = None, device: str | None = None) -> str:
    """The HTML page of the run in ``run_dir``.

    Args:
        run_dir: The run directory (``<root>/<name>/version_N``).
        summary: The model summary (:func:`resnet_lightning.analysis.summary.model_summary`);
            default: the run's ``model_summary.json``, if it has one.
        device: The device it trained on, when known (the fit's own report says it).
    """
    config = _yaml(run_dir / "config.yaml")
    hparams = _yaml(run_dir / "hparams.yaml")
    summary = summary or _summary(run_dir)
    info = runs.run_info(run_dir)
    subtitle = f"{run_dir.resolve()}" + (f" · started {info['created']}" if info.get("created") else "")
    sections = [
        html.section("Model", html.paragraph(model_line(config, summary), "model")),
        _curves_section(run_dir),
        _test_section(run_dir),
        _images_section(run_dir),
        html.section("Environment", _environment(hparams, config, info, device)),
        html.section("Configuration", _config_text(run_dir, info)),
    ]
    return html.page(f"Run {run_dir.parent.name}/{run_dir.name}", subtitle, sections)


def model_line(config: dict[str, Any], summary: dict[str, Any] | None) -> str:
    """``cifar_resnet, block basic, depth 8, 78,042 parameters, 2.53 M MACs per 1x8x8 input``."""
    model = config.get("model") or {}
    s = summary or {}
    arch = s.get("arch") or model.get("arch") or "unknown architecture"
    block = s.get("block") or model.get("block") or "default"
    depth = s.get("depth") or (model.get("arch_kwargs") or {}).get("depth")
    parts = [str(arch), f"block {block}"]
    if depth:
        parts.append(f"depth {depth}")
    if s.get("parameters") is not None:
        parts.append(f"{s['parameters']:,} parameters")
    if s.get("macs") is not None:
        size = "x".join(map(str, s.get("input_size") or []))
        parts.append(f"{s['macs'] / 1e6:.2f} M MACs" + (f" per {size} input" if size else ""))
    if not summary:
        parts.append("parameters and MACs not recorded for this run")
    return ", ".join(parts)


def _curves_section(run_dir: Path) -> str:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return html.section("Learning curves", html.note("no metrics.csv in this run (it had no CSV logger)"))
    series = read_metrics(path)
    figure = curves_figure(series)
    if figure is None:
        return html.section("Learning curves", html.note("no epoch metrics were logged yet"))
    last = final_values(series)
    best = _best_line(config_monitor(run_dir), series)
    table = html.table(["metric", "last epoch's value"], [(k, html.number(v)) for k, v in sorted(last.items()) if "/block_" not in k])
    return html.section("Learning curves", best, html.image(html.figure_png(figure), "learning curves (metrics.csv)"), table)


def config_monitor(run_dir: Path) -> tuple[str, str]:
    """The metric the best checkpoint was chosen by, and whether higher is better (config.yaml's checkpoint)."""
    checkpoint = _yaml(run_dir / "config.yaml").get("checkpoint") or {}
    return str(checkpoint.get("monitor") or "val/acc"), str(checkpoint.get("mode") or "max")


def _best_line(monitor: tuple[str, str], series: dict[str, list[tuple[float, float]]]) -> str:
    name, mode = monitor
    points = series.get(name)
    if not points:
        return ""
    epoch, value = (max if mode == "max" else min)(points, key=lambda p: p[1])
    return html.paragraph(f"best {name} {html.number(value)} at epoch {int(epoch)} of {int(points[-1][0])}", "model")


def _test_section(run_dir: Path) -> str:
    rows = []
    for tested in sorted((run_dir / "test").glob(f"{runs.VERSION_PREFIX}*/metrics.csv")):
        for name, value in sorted(final_values(read_metrics(tested)).items()):
            rows.append((tested.parent.name, name, html.number(value)))
    if not rows:
        return html.section("Test results", html.note("not tested yet (resnet-lightning test ... --ckpt_path best)"))
    return html.section("Test results", html.table(["test run", "metric", "value"], rows))


def _images(run_dir: Path) -> list[Path]:
    found = []
    for path in sorted(run_dir.rglob("*.png")):
        parts = set(path.relative_to(run_dir).parts[:-1])
        if not parts & SKIPPED_DIRS:
            found.append(path)
    return found


def _images_section(run_dir: Path) -> str:
    images = _images(run_dir)
    if not images:
        return html.section(
            "Confusion matrix and diagnostics",
            html.note("no figures in this run (test writes the confusion matrix; the diagnostics callbacks and "
                      "`resnet-lightning analyze` write residual ratios, gradient flow and lesion plots)"),
        )
    # The test's figures first (confusion matrix, misclassified), then the per-block diagnostics.
    images.sort(key=lambda p: (p.relative_to(run_dir).parts[0] != "test", str(p)))
    parts = [html.image(p.read_bytes(), str(p.relative_to(run_dir))) for p in images]
    return html.section("Confusion matrix and diagnostics", "<div class=\"gallery\">", *parts, "</div>")


def _config_text(run_dir: Path, info: dict[str, Any]) -> str:
    parts = []
    if info.get("argv"):
        argv = ["resnet-lightning", *info["argv"][1:]]
        parts.append(html.preformatted(" ".join(shlex.quote(a) for a in argv)))
    path = run_dir / "config.yaml"
    if path.is_file():
        text = path.read_text()
        parts.append(html.collapsed(f"config.yaml ({len(text.splitlines())} lines)", html.preformatted(text)))
    else:
        parts.append(html.note("no config.yaml in this run"))
    return "\n".join(parts)


def _environment(hparams: dict[str, Any], config: dict[str, Any], info: dict[str, Any], device: str | None) -> str:
    rows = [(key.removeprefix("versions."), value) for key, value in sorted(hparams.items()) if key.startswith("versions.")]
    trainer = config.get("trainer") or {}
    for key in ("accelerator", "devices", "precision", "strategy"):
        if trainer.get(key) is not None:
            rows.append((f"trainer.{key}", trainer[key]))
    if device:
        rows.append(("device", device))
    for key in ("host", "slurm_job_id"):
        if info.get(key):
            rows.append((key, info[key]))
    if not rows:
        return html.note("no versions recorded (hparams.yaml is missing)")
    return html.table(["", ""], rows)


def _summary(run_dir: Path) -> dict[str, Any] | None:
    for path in sorted(run_dir.rglob("model_summary.json")):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return None


def _yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
