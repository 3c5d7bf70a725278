"""Every mistake in a comparison is one line naming the value, what was expected and what to do, before any run."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from resnet_lightning.cli import cli_main
from resnet_lightning.compare.command import _open_study, check_variants
from resnet_lightning.compare.config import load_comparison

from .helpers import tiny_comparison


def compare_error(capsys, *args: str, code: int = 2) -> str:
    with pytest.raises(SystemExit) as stop:
        cli_main(["compare", *args])
    assert stop.value.code == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("resnet-lightning") and "error: " in err, err
    return err


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"variants": {"basic": {"model.block": "basic"}, "plain": {"model.blok": "plain"}}}, ["variant 'plain'", "model.blok", "fit --help"]),
        ({"variants": {"basic": {"model.block": "basic"}, "plain": {"model.block": "plian"}}}, ["variant 'plain'", "'plian'", "did you mean 'plain'"]),
        ({"baseline": "resnet"}, ["baseline 'resnet' is not one of the variants", "basic, plain"]),
        ({"seeds": 1}, ["seeds: 1", "from 2 to 1000", "one seed gives no interval"]),
        ({"variants": {"basic": {"model.block": "basic"}}}, ["two or more names"]),
        ({"variants": {"basic": {"model.block": "basic"}, "same": {"model.block": "basic"}}}, ["'basic' and 'same' have the same options"]),
        ({"fixed": {"seed_everything": 3}}, ["fixed sets seed_everything", "seeds: K"]),
        ({"metrics": []}, ["metrics: []", "metrics: [test/acc]"]),
        ({"variant": {}}, ["unknown key 'variant'", "did you mean 'variants'"]),
        ({"configs": ["missing.yaml"]}, ["missing.yaml", "does not exist"]),
    ],
)
def test_a_bad_comparison_file_is_one_line_before_any_run(tmp_path, monkeypatch, capsys, changes, expected):
    monkeypatch.chdir(tmp_path)
    config = tiny_comparison(tmp_path / "tiny.yaml", **changes)
    err = compare_error(capsys, "--config", str(config))
    for part in expected:
        assert part in err, err
    assert not (tmp_path / "compare").exists()  # nothing ran, nothing was written


def test_two_variants_with_one_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "twice.yaml").write_text(
        "configs: []\nvariants:\n  plain: {model.block: plain}\n  basic: {model.block: basic}\n  plain: {model.block: preact}\n"
    )
    assert "two variants are named 'plain'" in compare_error(capsys, "--config", "twice.yaml")


@pytest.mark.parametrize(("args", "expected"), [
    (["--config", "tiny.yaml", "--seeds", "1"], ["--seeds", "1 is not a number of seeds"]),
    (["--config", "tiny.yaml", "--seeds", "three"], ["three", "is not a number of seeds"]),
    (["--config", "tiny.yaml", "--summary", "x"], ["not allowed with"]),
    ([], ["one of the arguments --config --summary is required"]),
])
def test_bad_flags_are_usage_errors(tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    tiny_comparison(tmp_path / "tiny.yaml")
    err = compare_error(capsys, *args, code=2)
    for part in expected:
        assert part in err, err


def test_an_output_directory_holding_another_study_or_comparison(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tiny_comparison(tmp_path / "tiny.yaml")
    output = tmp_path / "compare" / "tiny"
    output.mkdir(parents=True)
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(output / "study.journal")))
    optuna.create_study(storage=journal, study_name="digits-blocks")  # a search's study
    assert "holds 'digits-blocks', not comparison 'tiny'" in compare_error(capsys, "--config", str(config))

    other = tmp_path / "other"
    other.mkdir()
    _open_study(load_comparison(config), str(other / "study.journal"))  # the comparison as first run there
    changed = tiny_comparison(tmp_path / "changed.yaml", name="tiny", variants={"basic": {"model.block": "basic"}, "preact": {"model.block": "preact"}})
    err = compare_error(capsys, "--config", str(changed), "--output", str(other))
    assert "holds a different comparison 'tiny'" in err and "pass another --output" in err
    # More seeds, another baseline or metric: the same comparison, continued.
    _open_study(load_comparison(tiny_comparison(tmp_path / "more.yaml", seeds=4, baseline="plain")), str(other / "study.journal"))


def test_a_summary_of_a_directory_without_a_comparison(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "no comparison in empty" in compare_error(capsys, "--summary", "empty")


def test_a_missing_comparison_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = compare_error(capsys, "--config", "nothere.yaml")
    assert "comparison file nothere.yaml does not exist" in err and "configs/compare/" in err


def test_the_projects_comparisons_pass_every_check():
    for path in sorted((Path(__file__).resolve().parents[2] / "configs" / "compare").glob("*.yaml")):
        comparison = load_comparison(path)
        check_variants(comparison)
        assert comparison.baseline in comparison.variants and comparison.seeds >= 3
        on_cifar = load_comparison(path, extra_configs=[path.parents[1] / "data" / "cifar10.yaml"])
        assert on_cifar.name == f"{comparison.name}-cifar10" and on_cifar.configs[-1].name == "cifar10.yaml"


def test_another_baseline_and_a_missing_extra_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_comparison(tmp_path / "tiny.yaml")
    assert load_comparison("tiny.yaml", baseline="plain").baseline == "plain"
    err = compare_error(capsys, "--config", "tiny.yaml", "--baseline", "plian")
    assert "baseline 'plian' is not one of the variants; did you mean plain?" in err
    err = compare_error(capsys, "--config", "tiny.yaml", "--config", "nothere.yaml")
    assert "--config nothere.yaml does not exist" in err and "configs/data/cifar10.yaml" in err


def test_a_summary_from_a_database_holding_several_comparisons(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    database = f"sqlite:///{tmp_path / 'optuna.db'}"
    _open_study(load_comparison(tiny_comparison(tmp_path / "tiny.yaml")), database)
    _open_study(load_comparison(tiny_comparison(tmp_path / "other.yaml", name="other")), database)
    err = compare_error(capsys, "--summary", "compare/x", "--storage", database)
    assert "holds 2 comparisons (other, tiny)" in err and "--summary compare/other" in err
    assert cli_main(["compare", "--summary", "compare/tiny", "--storage", database]) is None
    assert "compare: wrote " in capsys.readouterr().err and (tmp_path / "compare" / "tiny" / "summary.csv").is_file()
