"""The house (docs: STYLE.md "The house"), checked statically with ``ast``: nothing is imported.

1. No import cycle among the package's modules; an import inside a function counts as much
   as one at the top of a file (it runs as soon as the function does).
2. Imports go the documented direction (CLI -> module -> models -> registry; data -> nothing
   above it; callbacks -> analysis/models, never the reverse; ``models/`` without Lightning;
   ``registry`` without a model; ``errors`` and ``console`` import nothing from the package):
   :data:`FORBIDDEN` lists the edges that break it.
3. Every module is under :data:`MAX_LINES` lines.

``HOUSE_ROOT=/path/to/resnet_lightning pytest tests/test_house.py`` checks another copy of the
package (e.g. an older checkout, to see each test fail). Imports under ``if TYPE_CHECKING:``
never run, so they are not edges.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(os.environ.get("HOUSE_ROOT", Path(__file__).resolve().parents[1] / "resnet_lightning")).resolve()
MAX_LINES = 350
LIGHTNING = ("lightning", "pytorch_lightning", "lightning_fabric")

# Files that were the CLI before it became the ``cli/`` package, so an older checkout reads the same.
ALIASES = {"cli_errors": "cli", "commands": "cli", "run_config": "cli"}

# (importer, imported, the rule it breaks). A side is a peer of the package (``cli`` is
# resnet_lightning/cli.py or resnet_lightning/cli/...), "*" any module of the package, or
# "lightning" Lightning itself.
FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("module", "cli", "CLI -> module, never the reverse"),
    ("models", "cli", "CLI -> module -> models, never the reverse"),
    ("models", "module", "module -> models, never the reverse"),
    ("models", "lightning", "models/ are plain nn.Modules: no Lightning"),
    ("registry", "cli", "CLI -> ... -> registry, never the reverse"),
    ("registry", "module", "module -> ... -> registry, never the reverse"),
    ("registry", "models", "registry.py imports no model"),
    ("data", "cli", "data imports nothing above it"),
    ("data", "module", "data imports nothing above it"),
    ("data", "callbacks", "data imports nothing above it"),
    ("data", "analysis", "data imports nothing above it"),
    ("data", "search", "data imports nothing above it"),
    ("data", "compare", "data imports nothing above it"),
    ("analysis", "callbacks", "callbacks -> analysis, never the reverse"),
    ("analysis", "cli", "analysis/ is pure functions: the CLI calls them, never the reverse"),
    ("callbacks", "cli", "callbacks -> analysis/models: the CLI is above them"),
    ("models", "callbacks", "callbacks -> models, never the reverse"),
    ("errors", "*", "errors.py imports nothing from the package"),
    ("console", "*", "console.py imports nothing from the package"),
)


@dataclass(frozen=True)
class Import:
    """One import that ``importer`` runs: what it reaches and where it is written."""

    importer: str  # dotted module name
    target: str  # a module of the package, or the top-level name of an outside package
    line: int
    internal: bool


class Package:
    """The modules of the package at ``root`` and the imports between them, read with ``ast``."""

    def __init__(self, root: Path) -> None:
        self.root, self.name = root, root.name
        self.paths = {self._module_name(path): path for path in sorted(root.rglob("*.py"))}
        self.imports = [found for module in self.paths for found in self._imports_of(module)]
        self.edges: dict[str, dict[str, int]] = {module: {} for module in self.paths}
        for found in self.imports:
            if found.internal and found.target != found.importer:
                self.edges[found.importer].setdefault(found.target, found.line)

    def _module_name(self, path: Path) -> str:
        parts = [self.name, *path.relative_to(self.root).with_suffix("").parts]
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def _resolve(self, base: str, names: list[str]) -> list[str]:
        """The package's modules that ``from base import names`` (or ``import base``) reaches."""
        reached = [f"{base}.{name}" for name in names if f"{base}.{name}" in self.paths]
        if len(reached) < len(names) or not names:
            # A name defined in base itself: the edge goes to the most specific module that exists.
            while base and base not in self.paths:
                base = base.rpartition(".")[0]
            if base:
                reached.append(base)
        return reached

    def _imports_of(self, module: str) -> Iterator[Import]:
        path = self.paths[module]
        tree = ast.parse(path.read_text(), filename=str(path))
        hidden = _type_checking_only(tree)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if node in hidden:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield from self._found(module, alias.name, [], node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                yield from self._found(module, base, [alias.name for alias in node.names if alias.name != "*"], node.lineno)

    def _found(self, module: str, base: str, names: list[str], line: int) -> Iterator[Import]:
        if base.split(".")[0] != self.name:
            yield Import(module, base.split(".")[0], line, internal=False)
        else:
            yield from (Import(module, target, line, internal=True) for target in self._resolve(base, names))

    def cycles(self) -> list[str]:
        """One cycle per group of modules that import each other, as a readable chain."""
        found = []
        for component in strongly_connected(self.edges):
            text = chain(self.edges, shortest_cycle(self.edges, component))
            if len(component) > 2:
                text += f"\n    (one of the cycles among {len(component)} modules: {', '.join(component)})"
            found.append(text)
        return found

    def against_direction(self) -> list[str]:
        """Each import that :data:`FORBIDDEN` forbids, with its file, line and rule."""
        broken = set()
        for found in self.imports:
            for importer, imported, rule in FORBIDDEN:
                if peer(found.importer) == importer and _side_matches(imported, found) and found.target != found.importer:
                    where = self.paths[found.importer].relative_to(self.root.parent)
                    broken.add(f"{where}:{found.line} imports {found.target} ({rule})")
        return sorted(broken)

    def too_long(self) -> list[str]:
        """Each module of :data:`MAX_LINES` lines or more."""
        lengths = {path: len(path.read_text().splitlines()) for path in self.paths.values()}
        return [f"{path.relative_to(self.root.parent)}: {lines} lines" for path, lines in sorted(lengths.items()) if lines >= MAX_LINES]


def peer(module: str) -> str:
    """The peer a module belongs to: ``resnet_lightning.models.blocks`` -> ``models``."""
    parts = module.split(".")
    return ALIASES.get(parts[1], parts[1]) if len(parts) > 1 else "__init__"


def _side_matches(side: str, found: Import) -> bool:
    if side == "lightning":
        return not found.internal and found.target in LIGHTNING
    return found.internal and (side == "*" or peer(found.target) == side)


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes under ``if TYPE_CHECKING:``, which never run."""
    hidden: set[ast.AST] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            hidden.update(child for statement in node.body for child in ast.walk(statement))
    return hidden


def strongly_connected(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(edges[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def shortest_cycle(edges: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """The shortest cycle through the component's first module, as a list ending where it starts."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(edges[node]):
                if successor == start:
                    return paths[node] + [start]
                if successor in members and successor not in paths:
                    paths[successor] = paths[node] + [successor]
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected component always has one


def chain(edges: dict[str, dict[str, int]], cycle: list[str]) -> str:
    """``a (a.py:12) -> b (b.py:40) -> a``: each hop with the line that imports the next module."""
    hops = [f"{a} (line {edges[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(hops + [cycle[-1]])


@cache
def house() -> Package:
    return Package(ROOT)


def test_no_import_cycle() -> None:
    cycles = house().cycles()
    assert not cycles, f"{len(cycles)} group(s) of modules importing each other in {ROOT}:\n" + "\n".join(cycles)


def test_imports_go_the_documented_way() -> None:
    broken = house().against_direction()
    assert not broken, f"{len(broken)} import(s) against the house's direction:\n" + "\n".join(broken)


def test_modules_are_under_the_line_limit() -> None:
    long = house().too_long()
    assert not long, f"{len(long)} module(s) of {MAX_LINES} lines or more (split by what they do):\n" + "\n".join(long)


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """A small package breaking each rule once: every check finds its break, and only it."""
    files = {
        "__init__.py": "",
        "errors.py": "from .console import tell\n",
        "console.py": "import os\n",
        "registry.py": "def load():\n    from .models import blocks  # late, still an import\n",
        "models/__init__.py": "from .blocks import Block\n",
        "models/blocks.py": "from typing import TYPE_CHECKING\nimport lightning as L\nif TYPE_CHECKING:\n    from ..module import M\n"
        "from .. import registry\n",
        "module.py": "from resnet_lightning.models.blocks import Block\n" + "\n" * MAX_LINES,
        "cli/__init__.py": "from ..module import Classifier\n",
    }
    for name, text in files.items():
        (tmp_path / "resnet_lightning" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "resnet_lightning" / name).write_text(text)
    package = Package(tmp_path / "resnet_lightning")
    assert package.cycles() == [
        "resnet_lightning.models.blocks (line 5) -> resnet_lightning.registry (line 2) -> resnet_lightning.models.blocks"
    ]
    assert package.against_direction() == [
        "resnet_lightning/errors.py:1 imports resnet_lightning.console (errors.py imports nothing from the package)",
        "resnet_lightning/models/blocks.py:2 imports lightning (models/ are plain nn.Modules: no Lightning)",
        "resnet_lightning/registry.py:2 imports resnet_lightning.models.blocks (registry.py imports no model)",
    ]
    assert package.too_long() == [f"resnet_lightning/module.py: {MAX_LINES + 1} lines"]
