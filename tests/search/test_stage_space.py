"""The network's shape as the space: list elements as dimensions, conditional dimensions (``when:``).

One real two-trial search on digits (``resnet_stages``, one epoch of two batches) whose
space has each stage's depth and the middle stage's block, chosen between a plugin's
block and a built-in; the drop-path rate is a dimension only when that block is the
plugin's. The other tests refuse bad files before any trial.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from resnet_lightning.cli import cli_main
from resnet_lightning.errors import UserError
from resnet_lightning.search.config import load_search_config
from resnet_lightning.search.fit_args import check_search
from resnet_lightning.search.space import SearchConfigError, parse_space, suggest
from tests.fixtures_cli import run_cli

from .helpers import DIGITS, ENV, journal_study

LAYERS = {f"model.arch_kwargs.layers.{i}": {"type": "int", "low": 1, "high": 2} for i in range(3)}
BLOCK_1 = {"model.arch_kwargs.blocks.1": {"type": "categorical", "choices": ["se_basic", "basic"]}}
WHEN_SE = {"model.arch_kwargs.drop_path_rate": {"type": "float", "low": 0.0, "high": 0.1, "when": {"model.arch_kwargs.blocks.1": "se_basic"}}}
PLUGIN_TRIAL = {"model.arch_kwargs.layers.0": 1, "model.arch_kwargs.layers.1": 2, "model.arch_kwargs.layers.2": 1,
                "model.arch_kwargs.blocks.1": "se_basic", "model.arch_kwargs.drop_path_rate": 0.05}
BUILTIN_TRIAL = {"model.arch_kwargs.layers.0": 2, "model.arch_kwargs.layers.1": 1, "model.arch_kwargs.layers.2": 1,
                 "model.arch_kwargs.blocks.1": "basic"}


def stage_search(path: Path, **changes) -> Path:
    search = {
        "study": "stages",
        "configs": [str(DIGITS)],
        "fixed": {
            "model.arch": "resnet_stages",
            "model.arch_kwargs.widths": [8, 8, 16],
            "model.arch_kwargs.blocks": ["basic", "basic", "preact"],  # element 1 is searched
            "trainer.max_epochs": 1,
            "trainer.limit_train_batches": 2,
            "trainer.limit_val_batches": 1,
            "trainer.enable_model_summary": False,
        },
        "space": {**LAYERS, **BLOCK_1, **WHEN_SE},
        "objectives": {"val/acc": "maximize", "macs": "minimize"},
        "sampler": {"name": "nsga2", "seed": 0},
        "n_trials": 2,
        "enqueue": [PLUGIN_TRIAL, BUILTIN_TRIAL],
        **changes,
    }
    path.write_text(yaml.safe_dump(search, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cwd = tmp_path_factory.mktemp("stages")
    search = stage_search(cwd / "stages.yaml")
    done = run_cli("search", "--config", str(search), "--output", "out", cwd=cwd, env=ENV)
    assert done.returncode == 0, done.stderr[-4000:]
    return {"cwd": cwd, "out": cwd / "out", "stderr": done.stderr, "study": journal_study(cwd / "out" / "study.journal", "stages")}


def test_each_trial_builds_the_shape_it_drew_with_the_plugin_block_in_its_stage(searched: dict) -> None:
    trials = searched["study"].get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2
    for trial in trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        kwargs = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["arch_kwargs"]
        # The elements and the fixed list's other entries, as one list each.
        assert kwargs["layers"] == [trial.params[f"model.arch_kwargs.layers.{i}"] for i in range(3)]
        assert kwargs["blocks"] == ["basic", trial.params["model.arch_kwargs.blocks.1"], "preact"]
        weights = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for stage, n in enumerate(kwargs["layers"], start=1):  # the stage's depth, in the trained weights
            assert f"model.layer{stage}.{n - 1}.conv1.weight" in weights and f"model.layer{stage}.{n}.conv1.weight" not in weights
        se = any(".se." in name or "fc1" in name for name in weights if name.startswith("model.layer2"))
        assert se == (trial.params["model.arch_kwargs.blocks.1"] == "se_basic"), sorted(weights)[:40]
    # The console shows each list whole, as the fit gets it.
    assert "search: trial 0 model.arch_kwargs.layers=[1, 2, 1] model.arch_kwargs.blocks=[basic, se_basic, preact] " in searched["stderr"]


def test_a_conditional_dimension_is_a_parameter_only_where_its_condition_holds(searched: dict) -> None:
    trials = searched["study"].get_trials(states=(TrialState.COMPLETE,))
    assert {t.params["model.arch_kwargs.blocks.1"] for t in trials} == {"se_basic", "basic"}
    for trial in trials:
        assert ("model.arch_kwargs.drop_path_rate" in trial.params) == (trial.params["model.arch_kwargs.blocks.1"] == "se_basic")


def test_best_yaml_retrains_the_same_network(searched: dict) -> None:
    out, study = searched["out"], searched["study"]
    config = yaml.safe_load((out / "best.yaml").read_text())
    best = next(t for t in study.trials if f"trial {t.number} " in (out / "best.yaml").read_text().splitlines()[0])
    assert config["model"]["arch_kwargs"]["layers"] == [best.params[f"model.arch_kwargs.layers.{i}"] for i in range(3)]
    cli = cli_main(["fit", "--config", str(out / "best.yaml"), f"--trainer.default_root_dir={searched['cwd'] / 'retrain'}",
                    "--trainer.enable_progress_bar=false"])
    trained = torch.load(Path(best.user_attrs["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    retrained = cli.model.state_dict()
    assert {k: v.shape for k, v in retrained.items()} == {k: v.shape for k, v in trained.items()}


def test_suggest_asks_for_a_conditional_dimension_only_when_its_condition_holds() -> None:
    space = parse_space({
        "model.block": {"type": "categorical", "choices": ["basic", "highway", "plain"]},
        "model.block_kwargs.gate_bias": {"type": "float", "low": -3, "high": 0, "when": {"model.block": "highway"}},
        "model.arch_kwargs.depth": {"type": "int", "low": 8, "high": 20, "step": 6, "when": {"model.block": ["basic", "plain"]}},
    })
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        values = suggest(trial, space)
        assert set(trial.params) == set(values)
        assert ("model.block_kwargs.gate_bias" in values) == (values["model.block"] == "highway")
        assert ("model.arch_kwargs.depth" in values) == (values["model.block"] != "highway")
        seen.add(values["model.block"])
        study.tell(trial, 0.0)
    assert seen == {"basic", "highway", "plain"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"space": {"model.arch_kwargs.layers.0": {"type": "int", "low": 1, "high": 2}, "model.arch_kwargs.layers.2": {"type": "int", "low": 1, "high": 2}}},
         "model.arch_kwargs.layers.1 is missing.*give the whole list in fixed:"),
        ({"space": {**LAYERS, "model.arch_kwargs.widths.3": {"type": "categorical", "choices": [8, 16]}}},
         r"per-stage lists differ in length: layers 3 long \(space:\), widths 4 long \(space:\), blocks 3 long \(fixed:/configs:\)"),
        ({"space": {f"model.arch_kwargs.layers.{i}": {"type": "int", "low": 1, "high": 2} for i in range(4)},
          "fixed": {"model.arch": "resnet_stages"}},
         r"layers 4 long \(space:\), widths 3 long \(resnet_stages's default\)"),
        ({"space": {**WHEN_SE, **BLOCK_1}}, "when: model.arch_kwargs.blocks.1 comes after it"),
        ({"space": {**BLOCK_1, "model.arch_kwargs.drop_path_rate": {"type": "float", "low": 0, "high": 0.1, "when": {"model.blok": "highway"}}}},
         "when: model.blok is not a dimension of space:"),
        ({"space": {**BLOCK_1, "model.arch_kwargs.drop_path_rate": {"type": "float", "low": 0, "high": 0.1, "when": {"model.arch_kwargs.blocks.1": "highway"}}}},
         "'highway' is not a value space.model.arch_kwargs.blocks.1 can take"),
        ({"sampler": {"name": "grid"}, "space": {**BLOCK_1, "model.arch_kwargs.drop_path_rate": {**WHEN_SE["model.arch_kwargs.drop_path_rate"], "step": 0.05}}},
         "the grid sampler .* cannot leave one out"),
        ({"enqueue": [{**BUILTIN_TRIAL, "model.arch_kwargs.drop_path_rate": 0.05}]},
         "enqueue: model.arch_kwargs.drop_path_rate is given in an entry where its condition does not hold"),
        ({"space": {"model.arch_kwargs.blocks.1": {"type": "categorical", "choices": ["se_basik", "basic"]}}},
         "se_basik"),
    ],
)
def test_bad_shape_spaces_are_one_line_before_any_trial(tmp_path: Path, changes: dict, message: str) -> None:
    path = stage_search(tmp_path / "bad.yaml", **{"enqueue": [], **changes})
    with pytest.raises(UserError, match=message) as caught:  # the CLI prints it as one line
        check_search(load_search_config(path))
    assert "\n" not in str(caught.value)


def test_the_cli_refuses_a_bad_shape_in_one_line_and_runs_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    bad = {"space": {**LAYERS, "model.arch_kwargs.widths.3": {"type": "categorical", "choices": [8, 16]}}, "enqueue": []}
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        cli_main(["search", "--config", str(stage_search(tmp_path / "bad.yaml", **bad)), "--output", "out"])
    assert stop.value.code == 2  # a SearchConfigError: a mistake in the search file exits 2, as the command line's do
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("resnet-lightning") and "widths 4 long" in err, err
    assert not (tmp_path / "out" / "logs").exists()


def test_the_shipped_stage_search_file_loads_and_resolves() -> None:
    search = load_search_config(Path(__file__).resolve().parents[2] / "configs" / "search" / "digits_stages.yaml")
    check_search(search)
    assert [o.name for o in search.objectives] == ["val/acc", "macs"] and search.sampler["name"] == "tpe"
    assert search.pruner["name"] == "moasha" and search.confirm == 3 and search.constraints.measures == {"macs", "latency_ms"}
    with pytest.raises(SearchConfigError):
        parse_space({"a.b": {"type": "int", "low": 1, "high": 2, "when": "x"}})


def test_a_per_stage_trial_is_labelled_by_its_shape() -> None:
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    from resnet_lightning.search.outputs import label

    params = {**{f"model.arch_kwargs.layers.{i}": n for i, n in enumerate([1, 2, 2, 1, 1, 1, 1, 1, 1, 1, 3])},
              "model.arch_kwargs.widths.0": 8, "model.arch_kwargs.widths.1": 16,
              "model.arch_kwargs.blocks.0": "highway", "model.arch_kwargs.blocks.1": "se_basic"}
    trial = create_trial(params=params, distributions={k: CategoricalDistribution([v]) for k, v in params.items()}, values=[1.0])
    assert label(trial) == "highway/se_basic 1-2-2-1-1-1-1-1-1-1-3 w8-16"  # stage 10 after stage 9, not after stage 1
