"""`plugin_statuses` and its table, on the really installed built-ins and example
plugins, and on the test distributions of ``tests/plugin_dists`` (pip-installed
by ``use_plugins`` in ``conftest.py``): a broken import, a duplicate name."""

from __future__ import annotations

import importlib.metadata

import pytest
from torch import nn

import resnet_lightning
from resnet_lightning import register_architecture, register_block
from resnet_lightning.plugin_status import PluginStatus, format_plugin_table, main, plugin_statuses
from resnet_lightning.registry import unregister

EXAMPLE_PLUGINS = {
    "se-resnet": {"se_basic", "se_bottleneck", "se_resnet18", "se_resnet34", "se_resnet50"},
    "wide-resnet": {"wide_basic", "wide_resnet", "wrn28_10"},
    "resnext": {"resnext_bottleneck", "resnext50_32x4d"},
    "crelu-ll": {"crelu_ll", "crelu_ll_net"},
}


def by_name(statuses: list[PluginStatus]) -> dict[tuple[str, str, str], PluginStatus]:
    return {(s.kind, s.name, s.distribution): s for s in statuses}


def test_every_builtin_loads_with_its_distribution_and_target() -> None:
    statuses = by_name(plugin_statuses())
    basic = statuses[("block", "basic", "resnet-lightning")]
    assert basic.target == "resnet_lightning.models.blocks:BasicBlock"
    assert basic.version == resnet_lightning.__version__
    assert basic.ok and basic.status == "ok"
    assert statuses[("architecture", "resnet50", "resnet-lightning")].ok
    builtins = [s for s in statuses.values() if s.distribution == "resnet-lightning"]
    assert len(builtins) >= 27 and all(s.ok for s in builtins), [s for s in builtins if not s.ok]


def test_kind_selects_one_group() -> None:
    blocks = plugin_statuses("block")
    assert blocks and {s.kind for s in blocks} == {"block"}
    assert "resnet50" not in {s.name for s in blocks}
    with pytest.raises(ValueError, match="unknown plugin kind 'blocks'"):
        plugin_statuses("blocks")  # type: ignore[arg-type]


@pytest.mark.parametrize("distribution", sorted(EXAMPLE_PLUGINS))
def test_the_example_plugins_load_when_installed(distribution: str) -> None:
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed (pip install -e plugins/{distribution})")
    mine = [s for s in plugin_statuses() if s.distribution == distribution]
    assert EXAMPLE_PLUGINS[distribution] <= {s.name for s in mine}
    assert all(s.ok and s.version == version for s in mine), [s for s in mine if not s.ok]


def test_a_plugin_that_fails_to_import_is_an_error_naming_the_cause(use_plugins) -> None:
    use_plugins("rl-test-plugin")
    statuses = by_name(plugin_statuses())
    broken = statuses[("block", "rl_test_broken", "rl-test-plugin")]
    assert broken.status == "error: RuntimeError: rl_test_plugin.broken fails to import on purpose"
    assert (broken.version, broken.target) == ("0.3.1", "rl_test_plugin.broken:BrokenBlock")
    # One broken plugin breaks nothing else, its own distribution's other entries included.
    assert statuses[("block", "rl_test_block", "rl-test-plugin")].ok
    assert statuses[("architecture", "rl_test_net", "rl-test-plugin")].ok
    assert statuses[("block", "basic", "resnet-lightning")].ok


def test_a_name_two_distributions_register_is_an_error_on_both(use_plugins) -> None:
    use_plugins("rl-test-plugin", "rl-test-duplicate")
    statuses = by_name(plugin_statuses("block"))
    ours, theirs = statuses[("block", "rl_test_block", "rl-test-plugin")], statuses[("block", "rl_test_block", "rl-test-duplicate")]
    assert ours.status == "error: 'rl_test_block' is also registered by rl-test-duplicate; use 'rl-test-plugin:rl_test_block' or uninstall one"
    assert theirs.status == "error: 'rl_test_block' is also registered by rl-test-plugin; use 'rl-test-duplicate:rl_test_block' or uninstall one"


@pytest.mark.parametrize(("switch", "distributions"), [("none", {"resnet-lightning"}), ("rl-test-duplicate", {"resnet-lightning", "rl-test-duplicate"})])
def test_the_environment_switch_restricts_the_distributions(use_plugins, monkeypatch, switch, distributions) -> None:
    monkeypatch.setenv("RESNET_LIGHTNING_PLUGINS", switch)
    use_plugins("rl-test-plugin", "rl-test-duplicate")
    statuses = plugin_statuses()
    assert {s.distribution for s in statuses} == distributions
    assert format_plugin_table(statuses).splitlines()[-2:] == [f"RESNET_LIGHTNING_PLUGINS={switch}", f"all {len(statuses)} load"]


def test_an_object_of_the_wrong_kind_is_an_error() -> None:
    register_block("status_test_function")(lambda in_channels, out_channels, stride=1, **kwargs: None)
    register_architecture("status_test_constant")(3)
    try:
        statuses = by_name(plugin_statuses())
    finally:
        unregister("block", "status_test_function")
        unregister("architecture", "status_test_constant")
    block = statuses[("block", "status_test_function", "<registered in process>")]
    assert block.status.startswith("error: ") and block.status.endswith("is function <lambda>, not an nn.Module subclass")
    assert statuses[("architecture", "status_test_constant", "<registered in process>")].status == "error: ?:status_test_constant is int 3, not a callable"


def test_in_process_registrations_are_listed() -> None:
    register_block("status_test_block")(nn.Identity)
    try:
        status = by_name(plugin_statuses("block"))[("block", "status_test_block", "<registered in process>")]
    finally:
        unregister("block", "status_test_block")
    assert status.ok and status.target == "torch.nn.modules.linear:Identity"


def test_the_table_has_a_section_per_kind_and_a_plugins_line() -> None:
    statuses = [
        PluginStatus("basic", "block", "resnet-lightning", "0.1.0", "resnet_lightning.models.blocks:BasicBlock", "ok"),
        PluginStatus("se_basic", "block", "se-resnet", "0.2.0", "se_resnet.blocks:SEBasicBlock", "error: ImportError: no torch"),
        PluginStatus("resnet18", "architecture", "resnet-lightning", "0.1.0", "resnet_lightning.models.builders:resnet18", "ok"),
    ]
    assert format_plugin_table(statuses).splitlines() == [
        "blocks (2):",
        "  name      distribution      version  target                                     status",
        "  basic     resnet-lightning  0.1.0    resnet_lightning.models.blocks:BasicBlock  ok",
        "  se_basic  se-resnet         0.2.0    se_resnet.blocks:SEBasicBlock              error: ImportError: no torch",
        "",
        "architectures (1):",
        "  name      distribution      version  target                                     status",
        "  resnet18  resnet-lightning  0.1.0    resnet_lightning.models.builders:resnet18  ok",
        "",
        "plugins: resnet-lightning-0.1.0, se-resnet-0.2.0",
        "1 of 3 failed",
    ]


def test_main_prints_the_table_and_fails_on_a_broken_plugin(use_plugins, capsys) -> None:
    assert main(["--kind", "architecture"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("architectures (") and "resnet50" in out and "blocks (" not in out
    use_plugins("rl-test-plugin")
    assert main([]) == 1
    assert "1 of" in capsys.readouterr().out.splitlines()[-1]


def test_the_cli_plugins_command_prints_the_table(capsys) -> None:
    from resnet_lightning.cli import cli_main

    cli_main(["plugins", "--kind", "block"])
    out = capsys.readouterr().out
    assert out.startswith("blocks (") and "resnet_lightning.models.blocks:BasicBlock" in out
