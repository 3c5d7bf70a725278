"""Each distribution's plugins checked in a child process, with a time limit per plugin.

A plugin that calls ``sys.exit`` or ``os._exit``, hangs, or crashes the interpreter is
reported on its own line ("exited 3", "timed out after 20 s") and every other plugin
is still checked: the rest of its distribution in a fresh child.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
import warnings
from multiprocessing.connection import wait
from typing import Any

from ..registry import PluginSpec
from .checks import IN_PROCESS, plugin_status


def _context() -> Any:
    # fork: a child starts with torch (and the built-ins) already imported by the parent, so
    # it pays only for the plugin's own import. Elsewhere (Windows, macOS' default) spawn.
    if "fork" in multiprocessing.get_all_start_methods() and sys.platform == "linux":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def check_isolated(specs: list[PluginSpec], timeout: float, check: bool, jobs: int | None) -> list[str]:
    results: list[str | None] = [None] * len(specs)
    in_process = [i for i, s in enumerate(specs) if s.distribution == IN_PROCESS]
    for i in in_process:  # objects registered in this process exist only here
        results[i] = plugin_status(specs[i], check)
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        if spec.distribution != IN_PROCESS:
            groups.setdefault(spec.distribution, []).append(i)
    if not groups:
        return [r or "" for r in results]
    context = _context()
    if context.get_start_method() == "fork":
        # Imported once here rather than once per child; nothing here starts a thread, so forking is safe.
        import resnet_lightning.models.builders  # noqa: F401
        import resnet_lightning.testing  # noqa: F401
    pending = [indices for _, indices in sorted(groups.items())]
    # The core's own 30-odd built-ins in chunks, so they share the cores with the plugins.
    pending = [chunk for indices in pending for chunk in _chunks(indices, 8)]
    jobs = max(1, jobs or os.cpu_count() or 1)
    running: list[_Child] = []
    while pending or running:
        while pending and len(running) < jobs:
            running.append(_Child(context, pending.pop(0), specs, check))
        now = time.monotonic()
        deadline = min(child.deadline(timeout) for child in running)
        ready = wait([c.conn for c in running] + [c.process.sentinel for c in running], max(0.0, deadline - now))
        for child in list(running):
            child.drain(results)
            if child.finished():
                child.process.join(5)
                running.remove(child)
                continue
            message = None
            if not child.process.is_alive():
                child.drain(results)
                if child.finished():
                    child.process.join(5)
                    running.remove(child)
                    continue
                message = f"error: {_exit_reason(child.process.exitcode)} while {child.phase}"
            elif time.monotonic() >= child.deadline(timeout):
                child.process.kill()
                message = f"error: timed out after {timeout:g} s while {child.phase}"
            if message is not None:
                child.process.join()
                running.remove(child)
                current = child.current()
                results[current] = message
                rest = [i for i in child.indices if results[i] is None]
                if rest:  # the others of the distribution, in a fresh process
                    pending.insert(0, rest)
        del ready
    return [r or "error: not checked" for r in results]


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[k : k + size] for k in range(0, len(indices), size)]


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            import signal

            return f"killed by {signal.Signals(-code).name}"
    return f"exited {code}"


class _Child:
    """One child process checking some plugins of one distribution, in order."""

    def __init__(self, context: Any, indices: list[int], specs: list[PluginSpec], check: bool) -> None:
        self.indices = indices
        self.conn, child_conn = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_worker, args=([specs[i] for i in indices], check, child_conn), daemon=True
        )
        self.process.start()
        child_conn.close()
        self.position = 0  # index into self.indices of the plugin being checked
        self.phase = "loading"  # then "being checked" (built and run), once its import returned
        self.started = time.monotonic()

    def drain(self, results: list[str | None]) -> None:
        while True:
            try:
                if not self.conn.poll():
                    return
                position, status = self.conn.recv()
            except (EOFError, OSError):
                return
            if position == "start":
                self.position, self.started, self.phase = status, time.monotonic(), "loading"
            elif position == "loaded":
                self.phase = "being checked"
            else:
                results[self.indices[position]] = status
                self.position = position + 1

    def finished(self) -> bool:
        return self.position >= len(self.indices)

    def current(self) -> int:
        return self.indices[min(self.position, len(self.indices) - 1)]

    def deadline(self, timeout: float) -> float:
        return self.started + timeout


def _worker(specs: list[PluginSpec], check: bool, conn: Any) -> None:
    # The table goes to the parent's stdout: whatever a plugin prints goes to stderr.
    sys.stdout = sys.stderr
    warnings.simplefilter("ignore")  # a plugin's warnings are not its status
    import torch

    torch.set_num_threads(1)  # tiny tensors; the other children share the cores
    for position, spec in enumerate(specs):
        conn.send(("start", position))
        conn.send((position, plugin_status(spec, check, loaded=lambda: conn.send(("loaded", position)))))
    conn.close()
