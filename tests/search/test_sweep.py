"""The W&B sweep template: the arguments a W&B agent builds parse through the real CLI."""

from __future__ import annotations

import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from resnet_lightning.cli import cli_main

from .helpers import ROOT

SWEEP = ROOT / "configs" / "sweeps" / "digits.yaml"


def agent_command(sweep: dict, values: dict) -> list[str]:
    """The command line a W&B agent runs for these parameter values (wandb's own formatting of ${args})."""
    args = create_sweep_command_args({"args": {name: {"value": value} for name, value in values.items()}})["args"]
    command = []
    for chunk in sweep["command"]:
        if chunk == "${args}":
            command += args
        elif chunk != "${env}":  # /usr/bin/env
            command.append(chunk)
    return command


def test_the_sweep_covers_the_search_space() -> None:
    sweep = yaml.safe_load(SWEEP.read_text())
    search = yaml.safe_load((ROOT / "configs" / "search" / "digits.yaml").read_text())
    assert set(sweep["parameters"]) == set(search["space"])
    assert sweep["command"][:3] == ["${env}", "resnet-lightning", "fit"] and "${args}" in sweep["command"]


@pytest.mark.parametrize("pick", [0, -1])  # the first and the last value of every parameter
def test_agent_arguments_parse_through_the_cli(monkeypatch, capsys, pick: int) -> None:
    monkeypatch.chdir(ROOT)  # the agent runs from the repository root; the configs are relative to it
    monkeypatch.setenv("WANDB_MODE", "offline")
    sweep = yaml.safe_load(SWEEP.read_text())
    values = {
        name: spec["values"][pick] if "values" in spec else spec["min" if pick == 0 else "max"]
        for name, spec in sweep["parameters"].items()
    }
    command = agent_command(sweep, values)
    assert f"--model.arch_kwargs.depth={values['model.arch_kwargs.depth']}" in command
    with pytest.raises(SystemExit) as stop:  # --print_config: parse the whole command line, print it, stop
        cli_main([*command[1:], "--print_config"])
    assert stop.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    model = config["model"]
    assert model["block"] == values["model.block"]
    assert model["arch_kwargs"] == {"depth": values["model.arch_kwargs.depth"], "drop_path_rate": values["model.arch_kwargs.drop_path_rate"]}
    assert model["optimizer"]["init_args"]["lr"] == pytest.approx(values["model.optimizer.init_args.lr"])
    assert config["trainer"]["logger"]["class_path"].endswith("WandbLogger")
