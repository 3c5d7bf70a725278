"""`resnet-lightning report`: one self-contained HTML page per run and per search, opened in a real headless Chromium.

The runs are real: a tiny fit (with gradient-flow and residual diagnostics) then a test, and a
tiny search of three trials. Chromium renders each page to a screenshot and dumps its DOM after
load; a copy of the page with one line of script appended marks each image the browser could
not decode (the report itself has no script).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from resnet_lightning.cli import cli_main
from tests.fixtures_cli import DIGITS, RUN_NAME, run_cli
from tests.search.helpers import ENV, tiny_search

TINY = [
    "--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}",
    "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1", "--trainer.max_epochs", "2",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]
DIAGNOSTICS = [
    "--trainer.callbacks+=LearningRateMonitor",  # logs lr-SGD by step, without an epoch column
    "--trainer.callbacks+=resnet_lightning.callbacks.GradientFlowMonitor", "--trainer.callbacks.every_n_steps=1",
    "--trainer.callbacks+=resnet_lightning.callbacks.ResidualBranchMonitor", "--trainer.callbacks.every_n_steps=1",
]
RUN_HEADINGS = ["Model", "Learning curves", "Test results", "Confusion matrix and diagnostics", "Environment", "Configuration"]
SEARCH_HEADINGS = ["Pareto front", "Importances", "Trials", "Best configuration"]
# Marks every image the browser failed to decode; appended to a copy of the page only.
PROBE = ('<script>window.addEventListener("load", () => { for (const i of document.images) '
         'i.dataset.loaded = String(i.complete && i.naturalWidth > 0); });</script>')


def chromium() -> str:
    found = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
    if found is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it where it can)")
    return found


def render(page: Path, out: Path) -> tuple[str, Image.Image]:
    """The DOM after load (of a copy with the probe) and a 1200x2000 screenshot of ``page``, from headless Chromium."""
    browser = chromium()
    probed = out / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={out / 'chromium-profile'}", "--window-size=1200,2000"]
    shot = out / f"{page.stem}.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    dom = subprocess.run([*flags, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout, Image.open(shot).convert("RGB")


class Images(HTMLParser):
    """Every ``<img>``'s attributes and every ``<h2>``/``<h3>``'s text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.headings: list[str] = []
        self._heading = False

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        self._heading = tag in ("h2", "h3")

    def handle_data(self, data) -> None:
        if self._heading:
            self.headings.append(data.strip())
            self._heading = False


def check_page(page: Path, out: Path, headings: list[str], min_images: int) -> tuple[Images, Image.Image]:
    """The page is self-contained and loads whole: headings, decodable images, a screenshot with something on it."""
    text = page.read_text()
    assert "<script" not in text and not re.search(r"""(src|href)=["'](https?:|//)""", text)  # no script, no network
    parsed = Images()
    parsed.feed(text)
    assert len(parsed.images) >= min_images
    for img in parsed.images:
        assert img["src"].startswith("data:image/png;base64,"), img["src"][:80]
        Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1]))).verify()  # PIL decodes every one
    dom, screenshot = render(page, out)
    for heading in headings:
        assert re.search(rf"<h2>{re.escape(heading)}", dom), heading
    assert dom.count('data-loaded="true"') == len(parsed.images)  # the browser drew every image
    assert 'data-loaded="false"' not in dom
    colours = screenshot.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # not blank: text, plots, tables
    # Drawn, not an empty frame: measured over the page's content, so a short page counts as fully as a long one.
    content = screenshot.crop(ImageOps.invert(screenshot).getbbox())
    non_white = sum(n for n, c in content.getcolors(maxcolors=1 << 20) if c != (255, 255, 255))
    assert non_white > 0.05 * content.width * content.height, (non_white, content.size)
    return parsed, screenshot


@pytest.fixture(scope="session")
def tested_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny fit with diagnostics, then a real test of its best checkpoint (confusion matrix)."""
    root = tmp_path_factory.mktemp("report-run")
    cli_main(["fit", *TINY, *DIAGNOSTICS, "--trainer.default_root_dir", str(root)])
    run = root / RUN_NAME / "version_0"
    assert (run / "report.html").is_file()  # the fit's own report, before the test
    cli_main(["test", *TINY, "--trainer.default_root_dir", str(root), "--ckpt_path", "best", "--trainer.limit_test_batches", "2",
              "--trainer.callbacks+=resnet_lightning.callbacks.TestReport"])
    return run


@pytest.fixture(scope="session")
def search_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny search: three trials of two short epochs, in their own processes."""
    cwd = tmp_path_factory.mktemp("report-search")
    fixed = {"model.arch": "cifar_resnet", "trainer.max_epochs": 2, "trainer.enable_model_summary": False,
             "trainer.limit_train_batches": 3, "trainer.limit_val_batches": 1}
    space = {"model.block": {"type": "categorical", "choices": ["basic", "plain"]},
             "model.optimizer.init_args.lr": {"type": "float", "low": 1.0e-3, "high": 0.3, "log": True}}
    search = tiny_search(cwd / "tiny.yaml", fixed={**fixed, "model.arch_kwargs.depth": 8}, space=space,
                         pruner={"name": "none"}, sampler={"name": "tpe", "seed": 0})
    done = run_cli("search", "--config", str(search), "--n_trials", "3", "--output", "out", cwd=cwd, env=ENV)
    assert done.returncode == 0, done.stderr[-4000:]
    return cwd / "out"


def test_a_fit_and_its_test_write_the_run_report_and_a_browser_shows_all_of_it(tested_run: Path, tmp_path: Path) -> None:
    page = tested_run / "report.html"
    parsed, _ = check_page(page, tmp_path, RUN_HEADINGS, min_images=4)
    captions = " ".join(img["alt"] for img in parsed.images)
    for figure in ("learning curves", "confusion_matrix.png", "gradient_flow.png", "residual_ratio.png"):
        assert figure in captions, (figure, captions)
    text = page.read_text()
    assert re.search(r"cifar_resnet, block basic, depth \d+, [\d,]+ parameters, [\d.]+ M MACs per 1x8x8 input", text)
    assert re.search(r"<td>version_0</td><td>test/acc</td><td>0\.\d+</td>", text)  # the test's result
    assert re.search(r"<td>lr-SGD</td><td>0\.\d+</td>", text)  # a per-step metric placed in its epoch
    assert re.search(r"<td>torch</td><td>\d", text) and "<td>device</td><td>cpu</td>" in text


def test_the_report_command_writes_a_run_report_where_asked(tested_run: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "elsewhere" / "run.html"
    target.parent.mkdir()
    cli_main(["report", str(tested_run), "--output", str(target)])
    assert f"resnet-lightning: report: {target}" in capsys.readouterr().err
    assert "<h2>Learning curves</h2>" in target.read_text()


def test_report_false_leaves_the_fit_without_a_page(tmp_path: Path) -> None:
    cli_main(["fit", *TINY, "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path), "--report", "false"])
    run = tmp_path / RUN_NAME / "version_0"
    assert (run / "metrics.csv").is_file() and not (run / "report.html").exists()


def test_a_search_report_shows_trials_front_and_importances_in_a_browser(search_output: Path, tmp_path: Path) -> None:
    done = run_cli("report", str(search_output), cwd=search_output.parent, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.strip().endswith(f"resnet-lightning: report: {search_output / 'report.html'}")
    page = search_output / "report.html"
    parsed, _ = check_page(page, tmp_path, SEARCH_HEADINGS, min_images=2)
    assert any("pareto.png" in img["alt"] for img in parsed.images)
    assert "<h3>study tiny: val/acc</h3>" in page.read_text()  # fANOVA importances of the three completed trials
    assert "study tiny: one objective (val/acc); a hypervolume needs two or more" in page.read_text()
    links = re.findall(r'<a href="([^"]+)">report</a>', page.read_text())
    assert len(links) == 3 and all((search_output / link).is_file() for link in links)  # each trial's own run report


def test_a_directory_that_is_no_run_and_no_search_is_one_line(tested_run: Path, tmp_path: Path, capsys) -> None:
    def error(*args: str) -> str:
        with pytest.raises(SystemExit) as exited:
            cli_main(["report", *args])
        assert exited.value.code == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1
        return lines[0]

    assert error(str(tested_run.parent)) == (
        f"resnet-lightning: error: report: {tested_run.parent} holds runs, not one run; did you mean {tested_run}? Runs: version_0"
    )
    assert error(str(tmp_path / "nowhere")).endswith("nowhere does not exist; give a run directory "
                                                     "(<root>/<run name>/version_N) or a search's --output directory")
    assert "is neither a run directory" in error(str(tmp_path))


def test_the_browser_probe_tells_a_broken_image_from_a_good_one(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    good = base64.b64encode(buffer.getvalue()).decode()
    page = tmp_path / "two.html"
    page.write_text(f'<html><body><img src="data:image/png;base64,{good}"><img src="data:image/png;base64,AAAA"></body></html>')
    dom, _ = render(page, tmp_path)
    assert dom.count('data-loaded="true"') == 1 and dom.count('data-loaded="false"') == 1


@pytest.mark.skipif(os.environ.get("REPORT_SCREENSHOT") is None, reason="set REPORT_SCREENSHOT=PATH to save the docs' screenshot")
def test_save_the_docs_screenshot(tested_run: Path, tmp_path: Path) -> None:
    _, screenshot = render(tested_run / "report.html", tmp_path)
    screenshot.save(os.environ["REPORT_SCREENSHOT"])
