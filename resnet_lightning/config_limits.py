"""How large a YAML config may be: a hostile file neither hangs the CLI nor overflows its stack.

A YAML alias repeats a whole node, so seven short lines (each a list of nine
aliases of the line before) expand to 9^7 leaves, which jsonargparse then copies
and checks, key by key, for minutes; and a document nested 20,000 levels deep makes
PyYAML's composer recurse past Python's limit. Both are measured here on the event
stream (libyaml's parser keeps its own stack, so nothing recurses) before anything
is built: nesting depth, and the number of nodes the document has once every alias
is expanded. A real config is a few levels deep and a few hundred nodes.

:data:`PARSER_MODE` is a jsonargparse parser mode (``jsonargparse.set_loader``) whose
loader checks these limits and then loads as jsonargparse's own ``yaml`` mode does;
the CLI's parsers use it for config files and for values given on the command line.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import UserError

MAX_DEPTH = 100
MAX_NODES = 100_000
PARSER_MODE = "resnet_lightning_yaml"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigTooLargeError(UserError, yaml.YAMLError):
    """A YAML document nested too deeply, or too large once its aliases are expanded."""


def check_yaml_size(text: str, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """Raise :class:`ConfigTooLargeError` if ``text`` nests deeper than ``max_depth`` or
    expands (aliases included) to more than ``max_nodes`` nodes; YAML syntax errors
    raise ``yaml.YAMLError`` as ``yaml.safe_load`` would.

    Args:
        text: One or more YAML documents.
        max_depth: Most nested mappings and sequences allowed.
        max_nodes: Most nodes (scalars, mappings, sequences, keys included) once expanded.
    """
    anchored: dict[str, int] = {}  # anchor -> expanded size of its node
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, total before it opened) per open collection
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            total += anchored.get(event.anchor, 1)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(open_nodes) >= max_depth:
                line = f" at line {event.start_mark.line + 1}" if event.start_mark is not None else ""
                raise ConfigTooLargeError(
                    f"is nested more than {max_depth} levels deep{line}; a config is a few levels deep"
                )
            open_nodes.append((event.anchor, total))
            total += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, before = open_nodes.pop()
            if anchor is not None:
                anchored[anchor] = total - before
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                anchored[event.anchor] = 1
        if total > max_nodes:
            raise ConfigTooLargeError(
                f"expands to more than {max_nodes:,} values once its aliases (*name) are expanded; "
                "a config needs a few hundred: write the values out, or remove the aliases that repeat whole lists"
            )


def limited_yaml_load(text: str) -> Any:
    """jsonargparse's ``yaml`` loader after :func:`check_yaml_size`."""
    from jsonargparse import get_loader

    if isinstance(text, str):
        check_yaml_size(text)
    return get_loader("yaml")(text)


def register_parser_mode() -> str:
    """Make :data:`PARSER_MODE` a jsonargparse parser mode (once) and return its name."""
    from jsonargparse import get_loader, set_loader

    try:
        get_loader(PARSER_MODE)
    except KeyError:
        set_loader(PARSER_MODE, limited_yaml_load, exceptions=(yaml.YAMLError,))
    return PARSER_MODE


__all__ = ["MAX_DEPTH", "MAX_NODES", "PARSER_MODE", "ConfigTooLargeError", "check_yaml_size", "limited_yaml_load", "register_parser_mode"]
