"""One line per user error: what ``resnet-lightning`` prints instead of a traceback.

A user error (a bad option, a config file that does not parse, a checkpoint that is
not there) reaches the user as ``resnet-lightning: error: <what>; <expected>; <fix>``
and a non-zero exit, wherever it was raised: jsonargparse wraps the exceptions of
the constructors it calls (a DataModule's ``DataConfigError`` arrives inside "Does
not validate against any of the Union subtypes"), so the chain is unwrapped here.
Anything else is a bug and keeps its traceback; ``RESNET_LIGHTNING_DEBUG=1`` shows
the traceback of user errors too.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import io
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .storage import storage_full_message

PROG = "resnet-lightning"
DEBUG_ENV = "RESNET_LIGHTNING_DEBUG"

# The base class of what a class-path option takes, by the option's last name.
_BASES = {
    "data": ("lightning.pytorch", "LightningDataModule", "DataModule"),
    "optimizer": ("torch.optim", "Optimizer", "optimizer"),
    "lr_scheduler": ("torch.optim.lr_scheduler", "LRScheduler", "learning-rate scheduler"),
    "logger": ("lightning.pytorch.loggers", "Logger", "logger"),
    "callbacks": ("lightning.pytorch", "Callback", "callback"),
}
_KEY = re.compile(r'^\s*Parser key "([^"]+)"')


class UsageError(Exception):
    """A mistake in the command line or a config file, already phrased as one line for the user."""


def debug_requested() -> bool:
    """Whether ``RESNET_LIGHTNING_DEBUG`` asks for tracebacks instead of one-line errors."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def error_line(message: str) -> str:
    """``resnet-lightning: error: <message>`` with the message's whitespace, newlines included, collapsed."""
    return f"{PROG}: error: {' '.join(str(message).split())}"


def user_message(exc: BaseException, user_errors: tuple[type[BaseException], ...]) -> str | None:
    """The one-line message of ``exc`` if it is a user error, raised directly or wrapped; None for a bug."""
    links = _chain(exc)
    for link in links:
        if isinstance(link, UsageError):
            return str(link)
    full = storage_full_message(exc)  # a full disk, wherever the write was (a checkpoint, config.yaml, ...)
    if full is not None:
        return full
    for link in reversed(links):  # the innermost: jsonargparse's wrappers only repeat it
        if isinstance(link, user_errors):
            return str(link)
    return None


class HeldOutput:
    """Holds back what goes to stderr while the command line is checked and the classes built.

    A user error then prints one line, not Lightning's seed and device notices and the
    run directory of a run that will not happen; when the classes are built (or on a
    bug) everything held is written out, in order. Covers ``sys.stderr`` (warnings,
    prints) and the logging handlers writing to it (Lightning's own).
    """

    def __init__(self) -> None:
        self._buffer: io.StringIO | None = io.StringIO()
        self._stderr = sys.stderr
        self._handlers = [
            handler
            for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
            for handler in getattr(logger, "handlers", [])
            if isinstance(handler, logging.StreamHandler) and handler.stream is self._stderr
        ]
        sys.stderr = self._buffer
        for handler in self._handlers:
            handler.setStream(self._buffer)

    def release(self) -> None:
        """Stop holding and write out what was held (once)."""
        held = self._restore()
        if held:
            self._stderr.write(held)
            self._stderr.flush()

    def discard(self) -> None:
        """Stop holding and drop what was held."""
        self._restore()

    def _restore(self) -> str:
        if self._buffer is None:
            return ""
        if sys.stderr is self._buffer:
            sys.stderr = self._stderr
        for handler in self._handlers:
            if handler.stream is self._buffer:
                handler.setStream(self._stderr)
        held, self._buffer = self._buffer.getvalue(), None
        return held


@contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """While an extra command runs, its argparse or jsonargparse parser's usage errors raise ``UsageError``.

    Those parsers belong to the commands (``plugins``, ``analyze``, ...), which build
    them inside their ``main(argv)``; their ``error()`` would print the usage and exit
    2. Parsers that raise on errors themselves (``exit_on_error=False``, as the fit
    commands' own) keep doing so.
    """
    import argparse

    import jsonargparse

    originals = {cls: cls.__dict__["error"] for cls in (argparse.ArgumentParser, jsonargparse.ArgumentParser)}

    def error(parser: Any, message: str, *args: Any, **kwargs: Any) -> Any:
        if not getattr(parser, "exit_on_error", True):
            original = next(originals[cls] for cls in type(parser).__mro__ if cls in originals)
            return original(parser, message, *args, **kwargs)
        command = parser.prog.removeprefix(PROG).strip()
        raise UsageError(_join(f"{command}: {' '.join(str(message).split())}", f"see `{parser.prog} --help`"))

    for cls in originals:
        cls.error = error
    try:
        yield
    finally:
        for cls, original in originals.items():
            cls.error = original


def parse_error(exc: BaseException, argv: Sequence[str], parsers: dict[str, Any]) -> UsageError:
    """A jsonargparse parse error (``exit_on_error=False``) as one line naming the option, value and fix.

    Args:
        exc: The ``ArgumentError`` (or the ``UnicodeDecodeError`` of a binary config file).
        argv: The command line, for the files and values it names.
        parsers: The subcommand parsers, for the options they know.
    """
    links = _chain(exc)
    innermost = links[-1]
    key = ".".join(dict.fromkeys(m[1] for link in links if (m := _KEY.match(str(link)))))
    subcommand = next((arg for arg in argv if arg in parsers), None)
    help_hint = f"see `{PROG} {subcommand or ''} --help`".replace("  ", " ")

    bad_file = _unreadable_config(argv)
    if bad_file is not None:
        return UsageError(bad_file)
    if type(innermost).__name__ == "PathError" and "does not exist" in str(innermost):
        value = _value_of(argv, key) or str(innermost).split(": ", 1)[-1].strip("'")
        return UsageError(
            f"--{key} {value}: no such file ({Path(value).resolve()}); check the path, which is relative to the "
            f"current directory ({Path.cwd()})"
        )
    if (m := re.search(r"Expected a dot import path string: (\S+)", str(innermost))) is not None:
        return UsageError(unknown_class(key, m[1]))
    if (m := re.search(r"Option '(\w+)' is not accepted", str(exc))) is not None:
        class_path = re.search(r"Problem with given class_path '([\w.]+)'", str(exc))
        return UsageError(_unknown_option(key, m[1], class_path[1] if class_path else None, subcommand))
    if (m := re.search(r"unrecognized arguments: (\S+)", str(innermost))) is not None:
        flag = m[1].split("=", 1)[0]
        known = list(getattr(parsers.get(subcommand), "_option_string_actions", {}))
        return UsageError(_join(f"{flag} is not an option", _did_you_mean(flag, known), help_hint))
    if (m := re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", str(innermost))) is not None:
        from .cli import EXTRA_COMMANDS  # the commands beside LightningCLI's

        commands = [*re.findall(r"'(\w+)'", m[2]), *EXTRA_COMMANDS]
        return UsageError(
            _join(f"unknown command {m[1]!r}", _did_you_mean(m[1], commands), f"the commands are {', '.join(commands)}")
        )
    option = f"--{key}: " if key else ""
    return UsageError(f"{option}{' '.join(str(innermost).split())}; {help_hint}")


def unknown_class(key: str, name: str) -> str:
    """"--data DigitModule: no DataModule of that name; did you mean DigitsDataModule? ..." for a class option."""
    option = key.split(".")[-1]
    module, base, what = _BASES.get(option, ("", "", "class"))
    known = sorted(_class_names(module, base)) if module else []
    listed = f"known: {', '.join(known)}" if known and len(known) <= 30 else ""
    return _join(
        f"--{key} {name}: no {what} class of that name",
        _did_you_mean(name, known),
        listed,
        "give one of those names or a full import path such as my_package.MyClass",
    )


def _join(*parts: str) -> str:
    """The message's parts that are not empty, as one line: "what; did you mean x?; what to do"."""
    line = ""
    for part in (part for part in parts if part):
        if not line:
            line = part
        elif line.endswith("?"):  # "did you mean x? Known: ..."
            line += " " + part[0].upper() + part[1:]
        else:
            line += "; " + part
    return line


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"did you mean x?"`` for the closest of ``choices`` to ``name``, or ``""``."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:  # class names: compare without case, "sgd" for "SGD"
        lowered = {choice.lower(): choice for choice in choices}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)]
    return f"did you mean {close[0]}?" if close else ""


def _unknown_option(key: str, option: str, class_path: str | None, subcommand: str | None) -> str:
    accepted: list[str] = []
    if class_path is not None:
        try:
            from jsonargparse import ArgumentParser

            cls = _import(class_path)
            probe = ArgumentParser(exit_on_error=False)
            probe.add_class_arguments(cls)  # follows **kwargs to the base classes, as the CLI does
            accepted = [action.dest for action in probe._actions if action.dest not in ("help", "config")]
        except Exception:  # the suggestion is a courtesy; the message stands without it
            accepted = []
    owner = class_path.rsplit(".", 1)[-1] if class_path else key
    help_hint = f"see `{PROG} {subcommand or 'fit'} --{key}.help {owner}`"
    return _join(f"--{key}.{option}: {owner} has no option {option!r}", _did_you_mean(option, accepted), help_hint)


def _unreadable_config(argv: Sequence[str]) -> str | None:
    """The message for the first config file on the command line that is not text, or not valid YAML."""
    import yaml

    for path in _files_in(argv):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            return (
                f"{path}: not a text file (byte {err.object[err.start]:#04x} at offset {err.start} is not UTF-8); "
                "--config takes a YAML file such as configs/digits.yaml"
            )
        except OSError:
            continue
        try:
            yaml.safe_load(text)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
            started = err.context_mark
            context = f" ({err.context} at line {started.line + 1})" if err.context and started is not None else ""
            return (
                f"{path}, {where}: YAML syntax error: {err.problem}{context}; fix the file there "
                "(an unclosed bracket or quote, or a tab in the indentation, is the usual cause)"
            )
        except yaml.YAMLError as err:
            return f"{path}: YAML error: {' '.join(str(err).split())}; fix the file"
    return None


def _files_in(argv: Sequence[str]) -> list[Path]:
    """The existing files named on the command line (config files, as ``--config`` or ``--data FILE``)."""
    files = []
    for arg in argv:
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if not value.startswith("-") and len(value) < 4096:
            path = Path(value)
            try:
                if path.is_file() and path.suffix.lower() not in (".ckpt", ".pt", ".pth"):
                    files.append(path)
            except OSError:
                continue
    return files


def _value_of(argv: Sequence[str], key: str) -> str | None:
    flag = f"--{key}"
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _class_names(module: str, base: str) -> set[str]:
    """The names of the concrete classes below ``module.base`` imported so far."""
    try:
        root = getattr(importlib.import_module(module), base)
    except (ImportError, AttributeError):
        return set()
    names, todo = set(), [root]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if not sub.__name__.startswith("_") and not _abstract(sub):
                names.add(sub.__name__)
    return names


def _abstract(cls: type) -> bool:
    """Whether ``cls`` leaves an ``@abstractmethod`` unimplemented (without ABCMeta, ``inspect`` cannot tell)."""
    return inspect.isabstract(cls) or any(
        getattr(getattr(cls, name, None), "__isabstractmethod__", False) for name in dir(cls) if not name.startswith("__")
    )


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    links: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in links):
        links.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return links


__all__ = ["DEBUG_ENV", "PROG", "HeldOutput", "UsageError", "debug_requested", "error_line", "one_line_usage_errors", "parse_error", "unknown_class", "user_message"]
