"""``python benchmarks/house_child.py run|trace TREE TARGET ARG...``: the console script, for one tree.

Runs ``TARGET`` (``module:function``, the tree's own ``[project.scripts]`` entry) with
``sys.argv = ["resnet-lightning", ARG...]``, as the installed ``resnet-lightning``
script does, after saying on stderr which ``resnet_lightning`` it imported (the
benchmark checks that it is ``TREE``'s). Standard library only, so nothing is
imported before the command itself.

``trace`` also follows every Python call (``sys.setprofile``) until the first call of a
``training_step`` in the package, then prints on stdout, as one JSON line after TRACE_MARK, the package's
files the run passed through and the cross-file edges, and stops the process at once.
"""

import sys

del sys.path[0]  # this script's folder: its modules (common.py, search.py, ...) must not shadow anything

import importlib
import json
import os
import threading
from pathlib import Path

TREE_MARK = "house_child: resnet_lightning from "
CO_NEWLOCALS = 0x2  # inspect.CO_NEWLOCALS: a function's frame (a module's or a class body's has none)
INLINE = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"}  # part of the code around them
TRACE_MARK = "house_child: trace "


class Tracer:
    """Which files of ``package_dir`` run, and who calls or imports whom, until a ``training_step``."""

    def __init__(self, package_dir: Path) -> None:
        self.prefix = str(package_dir.resolve()) + os.sep
        self.names: dict[str, str] = {}  # code file -> path in the package, "" outside it
        self.files: set[str] = set()  # any frame: a module's import or a function
        self.ran: set[str] = set()  # a function (not only the top level of a module or a class body)
        self.functions: set[tuple[str, str]] = set()
        self.calls: set[tuple[str, str]] = set()  # caller file -> callee file
        self.indirect: set[tuple[str, str]] = set()  # the same through a library (Lightning calling a hook, ...)
        self.imports: set[tuple[str, str]] = set()  # importer file -> imported file

    def name(self, filename: str) -> str:
        name = self.names.get(filename)
        if name is None:
            name = self.names[filename] = filename[len(self.prefix):] if filename.startswith(self.prefix) else ""
        return name

    def __call__(self, frame, event, arg):  # the sys.setprofile signature
        if event != "call":
            return
        code = frame.f_code
        callee = self.name(code.co_filename)
        if not callee:
            return
        self.files.add(callee)
        if not code.co_flags & CO_NEWLOCALS:
            if code.co_name != "<module>":
                return  # a class body: part of its module's import
            importer = frame.f_back  # the importing frame, behind importlib's own frames
            while importer is not None and importer.f_code.co_filename.startswith("<frozen importlib"):
                importer = importer.f_back
            source = self.name(importer.f_code.co_filename) if importer is not None else ""
            if source and source != callee:
                self.imports.add((source, callee))
            return
        if code.co_name not in INLINE:
            self.ran.add(callee)
            self.functions.add((callee, getattr(code, "co_qualname", code.co_name)))
        caller, through = frame.f_back, False
        while caller is not None and not self.name(caller.f_code.co_filename):
            caller, through = caller.f_back, True
        source = self.name(caller.f_code.co_filename) if caller is not None else ""
        if source and source != callee:
            (self.indirect if through else self.calls).add((source, callee))
        if code.co_name == "training_step":
            self.report(reached=True)
            os._exit(0)  # the question is answered; the fit need not go on

    def report(self, reached: bool) -> None:
        sys.setprofile(None)
        threading.setprofile(None)
        result = {
            "reached_training_step": reached,
            "files": sorted(self.files),
            "files_with_functions_run": sorted(self.ran),
            "functions": len(self.functions),
            "call_edges": sorted(f"{a} -> {b}" for a, b in self.calls),
            "call_edges_through_libraries": sorted(f"{a} -> {b}" for a, b in self.indirect - self.calls),
            "import_edges": sorted(f"{a} -> {b}" for a, b in self.imports),
        }
        sys.stdout.write("\n" + TRACE_MARK + json.dumps(result) + "\n")
        sys.stdout.flush()


def main(mode: str, tree: str, target: str, argv: list[str]) -> int:
    tracer = Tracer(Path(tree) / "resnet_lightning") if mode == "trace" else None
    if tracer is not None:
        threading.setprofile(tracer)
        sys.setprofile(tracer)
    import resnet_lightning

    print(TREE_MARK + resnet_lightning.__file__, file=sys.stderr, flush=True)
    module, function = target.split(":")
    sys.argv = ["resnet-lightning", *argv]
    try:
        return getattr(importlib.import_module(module), function)()
    finally:
        if tracer is not None:
            tracer.report(reached=False)  # the run ended (or failed) before any training_step


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
