"""A W&B server that is down, hung or broken never takes a run down: the run logs offline.

The servers are real sockets on 127.0.0.1 run by this test: one accepts connections
and never answers, one answers HTTP 503 to everything, one answers the first request
like W&B and then hangs; a port nobody listens on stands for a network that is not
there. Fits run the real CLI in a subprocess with real wandb; the offline run is read
back with wandb's own reader. ``WANDB_MODE=online`` without a key or a server goes
offline too; a W&B setting wandb rejects is a one-line error before training.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from resnet_lightning.tracking import WandbSettingError, check_wandb_settings, offline_reason, read_offline_run

# wandb.init used to stall ~110 s on a hung server and then raise; a fit of three
# steps takes ~15 s here, so this bound fails on the old behaviour with room to spare.
FIT_BOUND_S = 90


class SilentServer:
    """Accepts every connection and never sends a byte (a hung server, a black-holing proxy)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.socket.close()
        try:  # a listening socket closed in another thread does not wake accept() on Linux
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self.thread.join(5)
        for connection in self.connections:
            connection.close()


class ScriptedServer:
    """Answers the n-th request (POST or GET) with ``answer(n)``: ``(status, body)``, or None to hang."""

    def __init__(self, answer: Callable[[int], tuple[int, bytes] | None]) -> None:
        self.requests = 0
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests += 1
                reply = answer(server.requests)
                if reply is None:
                    server.release.wait()  # hang until the test is over
                    return
                status, body = reply
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def wandb_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], str]:
    """Point wandb at a local server with a (fake) API key and no mode chosen."""

    def point_at(port: int) -> str:
        url = f"http://127.0.0.1:{port}"
        monkeypatch.delenv("WANDB_MODE", raising=False)
        monkeypatch.delenv("WANDB_INIT_TIMEOUT", raising=False)
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_API_KEY", "f" * 40)
        monkeypatch.setenv("WANDB_SILENT", "true")
        return url

    return point_at


def fit(root: Path, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Three steps of the real CLI with a WandbLogger; (process, seconds)."""
    args = ["fit", "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}",
            "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1",
            "--trainer.logger", "lightning.pytorch.loggers.WandbLogger",
            "--trainer.logger.save_dir", str(root / "logs"), "--trainer.default_root_dir", str(root)]
    full_env = dict(os.environ, **(env or {}))
    # A fresh process, as from a shell: not the wandb service of this test process (earlier in-process tests).
    full_env.pop("WANDB_SERVICE", None)
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "resnet_lightning", *args], cwd=root,
                            env=full_env, capture_output=True, text=True, timeout=240)
    return result, time.monotonic() - start


def closed_port() -> int:
    """A loopback port nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_logged_offline(result: subprocess.CompletedProcess, seconds: float, root: Path, *words: str) -> str:
    """The fit finished in time, said once why it went offline (``words``), and wrote a readable offline run."""
    assert result.returncode == 0, result.stderr[-3000:]
    assert seconds < FIT_BOUND_S, f"fit took {seconds:.0f} s"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    stderr = result.stderr.replace(str(root), "<tmp>")  # the test's name may say "offline" too
    offline_lines = [line for line in stderr.splitlines() if "offline" in line.lower()]
    assert len(offline_lines) == 1, stderr[-3000:]
    line = offline_lines[0]
    assert all(word in line for word in (*words, "wandb sync")), line
    run_dirs = [d for d in root.rglob("offline-run-*") if list(d.glob("run-*.wandb"))]
    assert len(run_dirs) == 1, sorted(root.rglob("*run-*"))
    assert f"{run_dirs[0].parent}/".replace(str(root), "<tmp>") in line  # where the run went
    run = read_offline_run(run_dirs[0])
    assert len([row for row in run.history if "train/loss_step" in row]) == 3
    return line


def test_offline_reason_against_a_silent_server_returns_in_time(silent_server, wandb_env) -> None:
    url = wandb_env(silent_server.port)
    start = time.monotonic()
    reason = offline_reason(timeout=1.5)
    assert time.monotonic() - start < 2.5
    assert reason == f"{url} did not answer within 1.5 s"
    assert silent_server.connections, "the probe never connected"


@pytest.mark.parametrize("status", [500, 503])
def test_offline_reason_names_an_http_error(wandb_env, status) -> None:
    server = ScriptedServer(lambda n: (status, b"upstream down"))
    try:
        url = wandb_env(server.port)
        assert offline_reason(timeout=2) == f"{url} answered HTTP {status}"
    finally:
        server.close()


def test_offline_reason_accepts_a_server_that_answers_like_wandb(wandb_env) -> None:
    server = ScriptedServer(lambda n: (401, b'{"errors": [{"message": "user is not logged in"}]}') if n == 1
                        else (200, b'{"data": {"viewer": null}}'))
    try:
        wandb_env(server.port)
        assert offline_reason(timeout=2) is None  # 401: W&B declining an anonymous query
        assert offline_reason(timeout=2) is None
    finally:
        server.close()


def test_fit_against_a_silent_server_goes_offline_without_stalling(tmp_path, silent_server, wandb_env) -> None:
    url = wandb_env(silent_server.port)
    result, seconds = fit(tmp_path)
    line = assert_logged_offline(result, seconds, tmp_path, url.removeprefix("http://"))
    assert "did not answer within" in line


def test_fit_against_a_server_answering_503_goes_offline(tmp_path, wandb_env) -> None:
    server = ScriptedServer(lambda n: (503, b"Service Unavailable"))
    try:
        url = wandb_env(server.port)
        result, seconds = fit(tmp_path)
    finally:
        server.close()
    line = assert_logged_offline(result, seconds, tmp_path, url.removeprefix("http://"))
    assert "answered HTTP 503" in line


def test_fit_goes_offline_when_the_server_hangs_after_the_probe(tmp_path, wandb_env) -> None:
    """Answers the probe like W&B, then hangs: wandb.init times out and the run continues offline."""
    answer = json.dumps({"data": {"viewer": None}}).encode()
    server = ScriptedServer(lambda n: (200, answer) if n == 1 else None)
    try:
        url = wandb_env(server.port)
        # wandb.init's bound, shortened from our 30 s default so the test stays quick. Its
        # own error reporting, which would flush to this hung server for ~25 s at exit, is off.
        result, seconds = fit(tmp_path, env={"WANDB_INIT_TIMEOUT": "5", "WANDB_ERROR_REPORTING": "false"})
    finally:
        server.close()
    assert server.requests > 1, "wandb never contacted the server after the probe"
    line = assert_logged_offline(result, seconds, tmp_path, url.removeprefix("http://"))
    assert "failed while starting the run" in line


def test_fit_with_wandb_mode_online_and_no_api_key_goes_offline(tmp_path, monkeypatch) -> None:
    """Was ``wandb.errors.UsageError: No API key configured`` after the fit had started."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_INIT_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    # No ~/.netrc key either; and should anything try the network, it finds a closed port.
    env = {"WANDB_MODE": "online", "NETRC": str(tmp_path / "no-netrc"), "WANDB_SILENT": "true",
           "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}"}
    result, seconds = fit(tmp_path, env=env)
    assert_logged_offline(result, seconds, tmp_path, "WANDB_MODE=online, but no W&B API key")


def test_fit_with_wandb_mode_online_and_an_unreachable_server_goes_offline(tmp_path, wandb_env) -> None:
    """Was ``CommError: Failed to get resume status`` after ~2 minutes (the explicit mode skipped the probe)."""
    url = wandb_env(closed_port())
    result, seconds = fit(tmp_path, env={"WANDB_MODE": "online"})
    line = assert_logged_offline(result, seconds, tmp_path, "WANDB_MODE=online, but", url.removeprefix("http://"))
    assert "is not reachable" in line


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WANDB_MODE", "sideways", ["'online', 'offline'", "'disabled'"]),
        ("WANDB_BASE_URL", "not a url", ["expected a valid URL", "https://api.wandb.ai"]),
    ],
)
def test_a_wandb_setting_wandb_rejects_is_one_line_before_training(tmp_path, variable, value, expected) -> None:
    """Were pydantic tracebacks from inside wandb.init, after the fit had started."""
    result, _ = fit(tmp_path, env={variable: value, "WANDB_SILENT": "true"})
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"resnet-lightning: error: {variable}={value!r} is not a valid W&B setting"), line
    assert all(word in line for word in expected) and f"fix or unset {variable}" in line, line
    assert "Epoch" not in result.stderr and not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("wandb"))


def test_wandb_mode_is_read_as_wandb_reads_it(monkeypatch) -> None:
    """Case and spaces do not matter; an empty value means unset (as ``WANDB_MODE= cmd`` leaves it)."""
    monkeypatch.setenv("WANDB_MODE", " Offline ")
    check_wandb_settings()
    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.setenv("WANDB_MODE", "")
    check_wandb_settings()
    assert "WANDB_MODE" not in os.environ
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "soon")
    with pytest.raises(WandbSettingError, match=r"WANDB_INIT_TIMEOUT='soon' is not a valid W&B setting: expected a valid number"):
        check_wandb_settings()
