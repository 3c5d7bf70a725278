"""The search report's hypervolume: the Pareto front's volume after each completed trial, with its reference point.

The study is a real Optuna study in a real journal file, its trials' values made up through
``ask``/``tell`` (the values are known, so the volume is); the report is the real command,
the page is opened in headless Chromium like every other report.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from resnet_lightning.report.hypervolume import hypervolume_history
from resnet_lightning.search.storage import open_storage
from tests.fixtures_cli import run_cli
from tests.search.helpers import ENV
from tests.test_report import check_page

# (val/acc maximised, macs minimised): normalised to losses (1, 0), (0, 1), (0.5, 0.5) against the reference (1, 1).
VALUES = [(0.5, 100.0), (0.9, 300.0), (0.7, 200.0)]


def test_the_volume_is_of_the_normalised_front_against_the_worst_observed_point() -> None:
    history = hypervolume_history([0, 1, 2], np.array(VALUES), maximize=[True, False])
    # Each of the first two is the worst on one objective: no volume; the third dominates a quarter of the box.
    assert history.values == pytest.approx([0.0, 0.0, 0.25])
    assert history.best == pytest.approx([0.9, 100.0]) and history.worst == pytest.approx([0.5, 300.0])
    # Minimising both instead: (0.5, 100) is best on both, the whole box, whatever comes after it.
    assert hypervolume_history([0, 1, 2], np.array(VALUES), maximize=[False, False]).values == pytest.approx([1.0, 1.0, 1.0])
    # A trial with a non-finite value is left out, not a crash.
    assert hypervolume_history([0, 1], np.array([(0.5, np.inf), (0.7, 1.0)]), maximize=[True, False]).numbers == [1]


def make_study(output: Path) -> None:
    """A two-objective study in ``output/study.journal``: the three trials above, a failed one between them."""
    output.mkdir()
    study = optuna.create_study(study_name="mo", storage=open_storage(str(output / "study.journal")),
                                directions=["maximize", "minimize"])
    depth = {"model.arch_kwargs.depth": CategoricalDistribution([8, 14, 20])}
    for index, values in enumerate(VALUES):
        if index == 1:
            study.tell(study.ask(depth), state=TrialState.FAIL)
        study.tell(study.ask(depth), list(values))


def test_a_two_objective_search_report_shows_the_hypervolume_in_a_browser(tmp_path: Path) -> None:
    output = tmp_path / "out"
    make_study(output)
    done = run_cli("report", str(output), cwd=tmp_path, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    page = output / "report.html"
    parsed, _ = check_page(page, tmp_path, ["Pareto front", "Hypervolume", "Importances", "Trials"], min_images=1)
    assert any(img["alt"] == "hypervolume after each completed trial" for img in parsed.images)
    text = page.read_text()
    assert "<p>0.250 after 3 completed trials." in text  # the failed trial is not counted
    # The reference point, in the objectives' own units (the names come from the study: objective 0, 1 without trials.csv).
    assert re.search(r"<tr><td>objective 0</td><td>maximize</td><td>0\.9</td><td>0\.5</td></tr>", text)
    assert re.search(r"<tr><td>objective 1</td><td>minimize</td><td>100</td><td>300</td></tr>", text)
