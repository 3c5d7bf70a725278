"""`plugin_statuses` and its table, on the really installed built-ins and example
plugins, and on the test distributions of ``tests/plugin_dists`` (pip-installed
by ``use_plugins`` in ``conftest.py``): a broken import, a duplicate name."""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Iterator

import pytest
from torch import nn

import resnet_lightning
from resnet_lightning import refresh_plugins, register_architecture, register_block
from resnet_lightning.models import BasicBlock
from resnet_lightning.plugin_status import NO_STRUCTURE, PluginStatus, format_plugin_table, main, plugin_statuses
from resnet_lightning.registry import PLUGINS_ENV, unregister
from tests.project_plugins import SHIPPED_PLUGINS, project_entries

# The project's own distributions only: whatever else is installed (a user's own plugin, even a
# broken one) is not what these tests are about.
PROJECT_ONLY = ",".join(SHIPPED_PLUGINS)

EXAMPLE_PLUGINS = {
    "se-resnet": {"se_basic", "se_bottleneck", "se_resnet18", "se_resnet34", "se_resnet50"},
    "wide-resnet": {"wide_basic", "wide_resnet", "wrn28_10"},
    "resnext": {"resnext_bottleneck", "resnext50_32x4d"},
    "crelu-ll": {"crelu_ll", "crelu_ll_net"},
}


def by_name(statuses: list[PluginStatus]) -> dict[tuple[str, str, str], PluginStatus]:
    return {(s.kind, s.name, s.distribution): s for s in statuses}


@contextlib.contextmanager
def _project_only(monkeypatch: pytest.MonkeyPatch, *others: str) -> Iterator[None]:
    """Only the project's distributions (and ``others``) discovered, until the block ends."""
    monkeypatch.setenv(PLUGINS_ENV, ",".join([PROJECT_ONLY, *others]))
    refresh_plugins()  # discovery is cached; the variable is read when it is refreshed
    try:
        yield
    finally:
        monkeypatch.undo()
        refresh_plugins()


@pytest.fixture(scope="module")
def installed() -> list[PluginStatus]:
    """The project's plugins' statuses, checked once for the tests that only read it (seconds per run)."""
    with pytest.MonkeyPatch.context() as monkeypatch, _project_only(monkeypatch):
        return plugin_statuses()


@pytest.fixture
def project_only() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as monkeypatch, _project_only(monkeypatch):
        yield


def test_every_builtin_loads_with_its_distribution_and_target(installed) -> None:
    statuses = by_name(installed)
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
def test_the_example_plugins_load_when_installed(installed, distribution: str) -> None:
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed (pip install -e plugins/{distribution})")
    mine = [s for s in installed if s.distribution == distribution]
    assert EXAMPLE_PLUGINS[distribution] <= {s.name for s in mine}
    assert all(s.ok and s.version == version for s in mine), [s for s in mine if not s.ok]


def test_a_plugin_that_fails_to_import_is_an_error_naming_the_cause(use_plugins) -> None:
    use_plugins("rl-test-plugin")
    statuses = by_name(plugin_statuses(names=["rl_test_broken", "rl_test_block", "rl_test_net", "basic"]))
    broken = statuses[("block", "rl_test_broken", "rl-test-plugin")]
    assert broken.status == "error: RuntimeError: rl_test_plugin.broken fails to import on purpose"
    assert (broken.version, broken.target) == ("0.3.1", "rl_test_plugin.broken:BrokenBlock")
    # One broken plugin breaks nothing else, its own distribution's other entries included.
    assert statuses[("block", "rl_test_block", "rl-test-plugin")].ok
    assert statuses[("architecture", "rl_test_net", "rl-test-plugin")].ok
    assert statuses[("block", "basic", "resnet-lightning")].ok


def test_a_name_two_distributions_register_is_an_error_on_both(use_plugins) -> None:
    use_plugins("rl-test-plugin", "rl-test-duplicate")
    statuses = by_name(plugin_statuses(names=["rl_test_block"]))
    ours, theirs = statuses[("block", "rl_test_block", "rl-test-plugin")], statuses[("block", "rl_test_block", "rl-test-duplicate")]
    assert ours.status == "error: 'rl_test_block' is also registered by rl-test-duplicate; use 'rl-test-plugin:rl_test_block' or uninstall one"
    assert theirs.status == "error: 'rl_test_block' is also registered by rl-test-plugin; use 'rl-test-duplicate:rl_test_block' or uninstall one"


@pytest.mark.parametrize(("switch", "distributions"), [("none", {"resnet-lightning"}), ("rl-test-duplicate", {"resnet-lightning", "rl-test-duplicate"})])
def test_the_environment_switch_restricts_the_distributions(use_plugins, monkeypatch, switch, distributions) -> None:
    monkeypatch.setenv("RESNET_LIGHTNING_PLUGINS", switch)
    use_plugins("rl-test-plugin", "rl-test-duplicate")
    statuses = plugin_statuses("block")
    assert {s.distribution for s in statuses} == distributions
    assert format_plugin_table(statuses).splitlines()[-2:] == [f"RESNET_LIGHTNING_PLUGINS={switch}", f"all {len(statuses)} load"]


def test_an_object_of_the_wrong_kind_is_an_error() -> None:
    register_block("status_test_function")(lambda in_channels, out_channels, stride=1, **kwargs: None)
    register_architecture("status_test_constant")(3)
    try:
        statuses = by_name(plugin_statuses(names=["status_test_function", "status_test_constant"]))
    finally:
        unregister("block", "status_test_function")
        unregister("architecture", "status_test_constant")
    block = statuses[("block", "status_test_function", "<registered in process>")]
    assert block.status.startswith("error: ") and block.status.endswith("is function <lambda>, not an nn.Module subclass")
    assert statuses[("architecture", "status_test_constant", "<registered in process>")].status == "error: ?:status_test_constant is int 3, not a callable"


def test_in_process_registrations_are_listed() -> None:
    register_block("status_test_block")(BasicBlock)
    register_block("status_test_identity")(nn.Identity)  # cannot change the channels: breaks the contract
    try:
        statuses = by_name(plugin_statuses("block", names=["status_test_block", "status_test_identity"]))
    finally:
        unregister("block", "status_test_block")
        unregister("block", "status_test_identity")
    status = statuses[("block", "status_test_block", "<registered in process>")]
    assert status.ok and status.target == "resnet_lightning.models.blocks:BasicBlock"
    assert statuses[("block", "status_test_identity", "<registered in process>")].status.startswith(
        "error: block 'status_test_identity' breaks the block contract: with in_channels=16, out_channels=32"
    )


def test_networks_are_built_with_torch_as_it_is() -> None:
    # plugins builds each network plainly: nothing of torch (torch.nn.init, say) is replaced while a plugin's code runs.
    from torch.nn import init

    from resnet_lightning.models import ResNet

    originals = {name: getattr(init, name) for name in dir(init) if not name.startswith("_")}
    replaced: list[list[str]] = []

    def probe(*, num_classes: int = 10, in_channels: int = 3, block: object = None, **kwargs: object) -> nn.Module:
        replaced.append([name for name, function in originals.items() if getattr(init, name) is not function])
        return ResNet(BasicBlock, [1], widths=(8,), stem="cifar", in_channels=in_channels, num_classes=num_classes)

    register_architecture("status_test_init_probe")(probe)
    try:
        statuses = by_name(plugin_statuses(names=["status_test_init_probe"]))
    finally:
        unregister("architecture", "status_test_init_probe")
    assert statuses[("architecture", "status_test_init_probe", "<registered in process>")].ok
    assert replaced == [[]]


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


def test_main_prints_the_table_and_fails_on_a_broken_plugin(use_plugins, monkeypatch, capsys) -> None:
    with pytest.MonkeyPatch.context() as restricted, _project_only(restricted):
        assert main(["--kind", "block"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("blocks (") and "bottleneck" in out and "architectures (" not in out
    monkeypatch.setenv(PLUGINS_ENV, f"{PROJECT_ONLY},rl-test-plugin")
    use_plugins("rl-test-plugin")  # refreshes the discovery
    assert main(["--kind", "block"]) == 1
    rows = _rows(capsys.readouterr().out)  # the broken import, and the block that ignores its stride
    assert rows["rl_test_broken"].startswith("error: RuntimeError") and rows["rl_test_block"] == NO_STRUCTURE
    assert rows["rl_test_ignores_stride"].startswith("error: block 'rl_test_ignores_stride' breaks the block contract: ")


def test_the_cli_plugins_command_prints_the_table(project_only, capsys) -> None:
    from resnet_lightning.cli import cli_main

    cli_main(["plugins", "--kind", "block"])
    out = capsys.readouterr().out
    assert out.startswith("blocks (") and "resnet_lightning.models.blocks:BasicBlock" in out


def test_check_passes_every_builtin_and_example_plugin_and_says_the_contract_was_checked() -> None:
    # The command a plugin author gates CI on, over the project's own plugins, run once (about 30 s on
    # two idle cores): resnet101, resnet152, cifar_plain1202 and resnext101_32x8d, whose train-mode
    # gradient overflows on the checker's tiny input, pass, and a pass says the contract was checked.
    done, seconds = _run_plugins_command(None, "--check", plugins=PROJECT_ONLY, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = _rows(done.stdout)
    expected = {**project_entries("block"), **project_entries("architecture")}
    assert set(rows) == set(expected) and {"resnet101", "resnet152", "cifar_plain1202"} <= set(rows)
    assert [name for name, status in rows.items() if not status.startswith("ok")] == []
    assert done.stdout.rstrip().splitlines()[-1] == (
        f"all {len(rows)} load and keep the plugin contract (checked with resnet_lightning.testing)"
    )
    print(f"plugins --check over {len(rows)} plugins: {seconds:.1f} s")


def test_a_plain_listing_says_only_that_they_load() -> None:
    statuses = [PluginStatus("basic", "block", "resnet-lightning", "0.1.0", "m:B", "ok")]
    assert format_plugin_table(statuses).splitlines()[-1] == "all 1 load"
    assert format_plugin_table(statuses, checked=True).splitlines()[-1] == (
        "all 1 load and keep the plugin contract (checked with resnet_lightning.testing)"
    )
    failed = [*statuses, PluginStatus("x", "block", "d", "1", "m:X", "error: breaks the block contract: ...")]
    assert format_plugin_table(failed, checked=True).splitlines()[-1] == "1 of 2 failed the plugin contract check"


# --- isolation: each plugin in a child process with a time limit ------------------------


def _run_plugins_command(site, *args: str, plugins: str = "rl-test-misbehaving", timeout: float = 120):
    """``python -m resnet_lightning plugins ...`` as a user runs it, with ``site`` installed."""
    import os
    import subprocess
    import sys
    import time

    paths = [str(site)] if site is not None else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]),
               RESNET_LIGHTNING_PLUGINS=plugins)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "resnet_lightning", "plugins", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - start


def _rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines():
        cells = line.split(None, 4)
        if len(cells) == 5 and line.startswith("  ") and cells[0] != "name":
            rows[cells[0]] = cells[4]
    return rows


def test_exiting_hanging_dict_returning_and_wrong_shape_plugins_are_reported_and_the_rest_listed(plugin_sites) -> None:
    done, seconds = _run_plugins_command(plugin_sites["rl-test-misbehaving"], "--timeout", "6")
    rows = _rows(done.stdout)
    assert done.returncode == 1, done.stderr
    assert rows["rl_exits"] == "error: exited 3 while loading (sys.exit(3) in rl_test_misbehaving.exits)"
    assert rows["rl_hangs"] == "error: timed out after 6 s while loading"
    assert rows["rl_returns_dict"] == "error: returns dict, not nn.Module"
    assert rows["rl_builds_forever"] == "error: timed out after 6 s while being checked"
    assert rows["rl_wrong_shape"].startswith(
        "error: block 'rl_wrong_shape' breaks the block contract: with in_channels=16, "
        "out_channels=32, stride=2 it must map [2, 16, 7, 7] to [2, 32, 4, 4]"
    ), rows["rl_wrong_shape"]
    # The others, of the same distribution and the core, are all listed and fine.
    assert rows["rl_fine"] == "ok" and rows["basic"] == "ok" and rows["resnet152"] == "ok"
    assert len(rows) == 6 + sum(1 for s in plugin_statuses() if s.distribution == "resnet-lightning")
    assert done.stdout.rstrip().endswith(f"5 of {len(rows)} failed")
    assert seconds < 6 + 40, seconds  # one time limit, not a hang


def test_a_plugin_killed_mid_import_is_reported_by_its_exit_status(use_plugins, plugin_sites, tmp_path) -> None:
    # os._exit skips Python's SystemExit handling entirely: only the child's exit status tells.
    import shutil

    site = tmp_path / "site"
    shutil.copytree(plugin_sites["rl-test-misbehaving"], site)
    (site / "rl_test_misbehaving" / "exits.py").write_text("import os\nos._exit(5)\n")
    done, _ = _run_plugins_command(site, "--kind", "block", "--timeout", "4")
    assert _rows(done.stdout)["rl_exits"] == "error: exited 5 while loading"


def test_sys_exit_in_a_plugin_import_is_a_plugin_load_error_in_create_model(use_plugins) -> None:
    from resnet_lightning import PluginLoadError, create_model

    use_plugins("rl-test-misbehaving")
    with pytest.raises(PluginLoadError, match=r"block plugin 'rl_exits' from distribution rl-test-misbehaving 0\.0\.7 "
                       r"\(entry point 'rl_test_misbehaving.exits:ExitBlock'\) called sys\.exit\(3\) while being imported"):
        create_model("cifar_resnet20", block="rl_exits")


def test_the_plugins_command_imports_no_lightning() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from resnet_lightning.cli import cli_main\n"
        "try:\n    cli_main(['plugins', '--kind', 'architecture']); status = 0\n"
        "except SystemExit as stop:\n    status = stop.code\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'jsonargparse')))\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "RESNET_LIGHTNING_PLUGINS": "none"})
    assert done.returncode == 0, done.stderr
    assert "resnet50" in done.stdout and done.stdout.splitlines()[-1] == "LOADED []"


def test_check_runs_the_contract_checker_on_the_named_plugins(use_plugins, capsys) -> None:
    use_plugins("rl-test-misbehaving", "rl-test-plugin")
    broken = ["rl_wrong_shape", "rl_returns_dict", "rl_test_ignores_stride"]
    assert main(["--check", *broken, "rl_fine", "rl_test_block"]) == 1
    out = capsys.readouterr().out
    rows = _rows(out)
    assert set(rows) == {*broken, "rl_fine", "rl_test_block"}
    assert out.rstrip().splitlines()[-1] == "3 of 5 failed the plugin contract check"
    assert rows["rl_returns_dict"] == "error: breaks the architecture contract: architecture 'rl-test-misbehaving:rl_returns_dict' returned dict, not a torch.nn.Module"
    assert rows["rl_test_ignores_stride"].startswith("error: breaks the block contract: block 'rl-test-plugin:rl_test_ignores_stride' ")
    assert rows["rl_fine"] == "ok"
    assert rows["rl_test_block"] == "ok (no branch/shortcut/merge: the residual analyses skip it)"
    assert rows["rl_wrong_shape"].startswith(
        "error: breaks the block contract: block 'rl-test-misbehaving:rl_wrong_shape' (WrongShapeBlock(16, 32, stride=1, "
    ), rows["rl_wrong_shape"]


def _exit_status(argv: list[str]) -> int:
    """``resnet-lightning ARGV`` through the one entry, in this process: its exit status."""
    from resnet_lightning.cli import cli_main

    try:
        cli_main(argv)
    except SystemExit as stop:
        return stop.code
    return 0


def test_an_unknown_name_to_check_is_one_line_with_a_suggestion(capsys) -> None:
    assert _exit_status(["plugins", "--check", "resnet5O"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "resnet-lightning: error: plugins: unknown block or architecture 'resnet5O'; did you mean 'resnet50'? "
        f"run `resnet-lightning plugins` to list the {len(plugin_statuses.__globals__['list_plugins']())} installed ones\n"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus"], "plugins: unrecognized arguments: --bogus; see `resnet-lightning plugins --help`"),
        (["--kind", "blok"], "argument --kind: invalid choice: 'blok'"),
        (["--timeout", "soon"], "argument --timeout: invalid float value: 'soon'"),
    ],
)
def test_a_bad_plugins_option_is_one_usage_line(args: list[str], expected: str, capsys) -> None:
    assert _exit_status(["plugins", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("resnet-lightning: error: plugins: ") and expected in err
