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

import argparse
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
from typing import Any, NoReturn

from .errors import UsageError
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


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes raise :class:`UsageError` (one line, exit 2) instead of printing the usage."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise UsageError(_usage_line(self.prog, message))


def _usage_line(prog: str, message: str) -> str:
    """``"<command>: <argparse's message>; see `<prog> --help`"``, on one line."""
    return _join(f"{prog.removeprefix(PROG).strip()}: {' '.join(str(message).split())}", f"see `{prog} --help`")


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
        raise UsageError(_usage_line(parser.prog, message))

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
    unions = [str(link) for link in links if "Does not validate against any of the Union subtypes" in str(link)]
    union = unions[-1] if unions and "Problem with given class_path" not in unions[-1] else None  # not a class's option
    if union is not None and (given := re.search(r"Given value: (.*)", union)) is not None:
        expected = re.findall(r"^\s*- Expected an? (.+?)(?:\. Got value:.*)?\s*$", union, re.M)
        if len(set(expected) - {"<class 'NoneType'>"}) == 1:  # Optional[X]: what X wants, with its hints
            (one,) = set(expected) - {"<class 'NoneType'>"}
            return UsageError(_wrong_type(key, one, _value_of(argv, key) or given[1].strip(), help_hint))
        if set(expected) - {"<class 'NoneType'>"}:  # else the errors are not about types ("Multiple subclasses ...")
            return UsageError(_wrong_union(key, expected, _value_of(argv, key) or given[1].strip(), help_hint))
    if (m := re.search(r"^Expected an? (.+?)\. Got value: (.*)$", str(innermost), re.S)) is not None:
        return UsageError(_wrong_type(key, m[1], _value_of(argv, key) or m[2], help_hint))
    if (m := re.search(r'Linked "([\w.]+)" must be given via "([\w.]+)"', str(innermost))) is not None:
        return UsageError(
            f"--{m[1]} is not an option of its own: the DataModule sets it ({m[2]}); remove --{m[1]} from the "
            "command line or the config (another DataModule, e.g. --data CIFAR10DataModule, brings its own)"
        )
    if (m := re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", str(innermost))) is not None:
        from .cli import EXTRA_COMMANDS  # the commands beside LightningCLI's

        commands = [*re.findall(r"'(\w+)'", m[2]), *EXTRA_COMMANDS]
        return UsageError(
            _join(f"unknown command {m[1]!r}", _did_you_mean(m[1], commands), f"the commands are {', '.join(commands)}")
        )
    option = f"--{key}: " if key else ""
    return UsageError(f"{option}{' '.join(str(innermost).split())}; {help_hint}")


_TYPE_WORDS = {
    "<class 'int'>": "a whole number, e.g. 3",
    "<class 'float'>": "a number, e.g. 0.1",
    "<class 'bool'>": "true or false",
    "<class 'str'>": "a string",
    "<class 'dict'>": "a mapping, e.g. {depth: 56}",
    "<class 'list'>": "a list, e.g. [a, b]",
}


def _wrong_union(key: str, expected: list[str], value: str, help_hint: str) -> str:
    """"--trainer.precision bf17: expected one of 64, 32, '16-mixed', ..., or null; did you mean bf16?" for a Union type."""
    choices: list[str] = []
    kinds: list[str] = []
    for one in expected:
        if (literal := re.fullmatch(r"typing\.Literal\[(.*)\]", one)) is not None:
            choices += [c.strip() for c in literal[1].split(",")]
        elif one == "<class 'NoneType'>":
            kinds.append("null")
        else:
            kinds.append(_TYPE_WORDS.get(one, one.replace("<class '", "").replace("'>", "")).split(",")[0])
    wanted = ([f"one of {', '.join(dict.fromkeys(choices))}"] if choices else []) + kinds
    names = [c.strip("'\"") for c in choices]
    shown = value if len(value) <= 80 else value[:77] + "..."
    return _join(f"--{key} {shown}: expected {' or '.join(wanted)}", _did_you_mean(value, names), help_hint)


def _wrong_type(key: str, expected: str, value: str, help_hint: str) -> str:
    """"--trainer.max_epochs abc: expected a whole number, e.g. 3" for jsonargparse's "Expected a <class 'int'>"."""
    from .config_limits import ConfigTooLargeError, limited_yaml_load

    shown = value if len(value) <= 80 else value[:77] + "..."
    option = f"--{key} {shown}" if key else shown
    if (literal := re.fullmatch(r"typing\.Literal\[(.*)\]", expected)) is not None:
        wanted = f"one of {literal[1]}"
        choices = [c.strip().strip("'\"") for c in literal[1].split(",")]
        return _join(f"{option}: expected {wanted}", _did_you_mean(value, choices), help_hint)
    wanted = _TYPE_WORDS.get(expected, expected.replace("<class '", "").replace("'>", ""))
    hint = ""
    stripped = value.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'":
        hint = f"write it without quotes ({stripped[1:-1]}), which make it a string"
    elif expected == "<class 'int'>" and re.fullmatch(r"[-+]?\d*\.\d+|[-+]?\d+(\.\d*)?[eE][-+]?\d+", stripped):
        hint = "a count takes no decimal point or exponent"
    elif expected == "<class 'dict'>" and stripped.startswith("{"):
        try:
            loaded = limited_yaml_load(stripped)
        except ConfigTooLargeError as err:
            hint = f"refused: the YAML {err}"
        except Exception as err:  # what the YAML parser said is the message
            hint = f"it is not valid YAML ({' '.join(str(getattr(err, 'problem', None) or err).split())})"
        else:
            if re.search(r"\w:[^\s/]", stripped):  # {depth:56} is one key "depth:56" with no value
                spaced = re.sub(r"(\w):(?=[^\s/])", r"\1: ", stripped)
                hint = f"YAML needs a space after each colon of a mapping: {spaced}"
            elif isinstance(loaded, str) or loaded == stripped:
                hint = "YAML read it as text, not a mapping; write it as {key: value, ...}, a space after each colon"
    return _join(f"{option}: expected {wanted}", hint, help_hint)


# Trainer options Lightning takes without a check (or fails on mid-fit): (option, lowest value, what it means).
_TRAINER_MINIMUMS = (
    ("accumulate_grad_batches", 1, "batches per optimizer step"),
    ("check_val_every_n_epoch", 1, "epochs between validations"),
    ("log_every_n_steps", 0, "steps between logged values"),
    ("min_epochs", 0, "epochs"),
    ("num_sanity_val_steps", -1, "validation batches before training (-1: all)"),
    ("gradient_clip_val", 0, "the gradient's largest norm or value (0: no clipping)"),
    ("fast_dev_run", 0, "batches of a quick check (0: off)"),
    ("limit_train_batches", 0, "a fraction (0.0-1.0) or a count of batches"),
    ("limit_val_batches", 0, "a fraction (0.0-1.0) or a count of batches"),
    ("limit_test_batches", 0, "a fraction (0.0-1.0) or a count of batches"),
    ("limit_predict_batches", 0, "a fraction (0.0-1.0) or a count of batches"),
)


def check_trainer_options(trainer: Any) -> None:
    """Raise ``UsageError`` for a Trainer option out of range, or an accelerator this machine lacks.

    Args:
        trainer: The ``trainer`` section of the parsed config.
    """
    for name, lowest, meaning in _TRAINER_MINIMUMS:
        value = trainer.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < lowest:
            raise UsageError(f"--trainer.{name} {value}: must be {lowest} or more ({meaning})")
    for name in ("val_check_interval",):
        value = trainer.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise UsageError(f"--trainer.{name} {value}: must be more than 0 (a fraction of an epoch, or a count of batches)")
    accelerator = trainer.get("accelerator")
    if isinstance(accelerator, str) and accelerator.lower() in ("gpu", "cuda", "mps", "tpu"):
        from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator, XLAAccelerator

        found = {"cuda": CUDAAccelerator.is_available(), "mps": MPSAccelerator.is_available(), "tpu": XLAAccelerator.is_available()}
        wanted = ("cuda", "mps") if accelerator.lower() == "gpu" else (accelerator.lower(),)
        if not any(found[name] for name in wanted):
            have = [name for name, ok in found.items() if ok] + ["cpu"]
            device = "GPU (CUDA or MPS)" if accelerator.lower() == "gpu" else accelerator.upper()
            raise UsageError(
                f"--trainer.accelerator {accelerator}: this machine has no {device} that PyTorch can use "
                f"(available: {', '.join(have)}); use --trainer.accelerator {have[0]}, or auto to take what there is"
            )


def run_directory_error(err: OSError, root: Any) -> UsageError | None:
    """One line for an ``OSError`` while creating the run directory under ``root`` (None: a full disk, said elsewhere)."""
    import errno

    if err.errno is None or err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return None  # an error of ours that is an OSError (RunNotFoundError), or a full disk
    path = Path(err.filename) if err.filename else Path(str(root or "."))
    shown = str(root) if len(str(root)) <= 80 else str(root)[:77] + "..."
    option = f"--trainer.default_root_dir {shown}" if root not in (None, ".", "") else f"the working directory {Path.cwd()}"
    if err.errno == errno.ENOTDIR or (err.errno == errno.EEXIST and not path.is_dir()):
        blocker = next((parent for parent in [path, *path.parents] if parent.exists() and not parent.is_dir()), path)
        return UsageError(
            f"{option}: cannot create the run directory {path}: {blocker} is a file, not a directory; "
            "give a directory (it is created if missing), or move the file"
        )
    if err.errno == errno.ENAMETOOLONG:
        long_part = max(path.parts, key=len)
        return UsageError(
            f"{option}: cannot create the run directory: the name {long_part[:40]}... is {len(long_part.encode())} bytes, "
            f"over the filesystem's limit of {_name_max(path)}; use a shorter --trainer.default_root_dir"
        )
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the filesystem is read-only" if err.errno == errno.EROFS else "permission denied"
        return UsageError(
            f"{option}: cannot create the run directory {path}: {why}; run from a directory you can write to, "
            "or give one with --trainer.default_root_dir DIR"
        )
    return UsageError(f"{option}: cannot create the run directory {path}: {err.strerror}; give another --trainer.default_root_dir")


def _name_max(path: Path) -> int:
    for parent in [path, *path.parents]:
        try:
            return os.pathconf(parent, "PC_NAME_MAX")
        except OSError:
            continue
    return 255


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

    from .config_limits import ConfigTooLargeError, check_yaml_size

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
            check_yaml_size(text)  # first: safe_load would recurse, or expand an alias bomb, for minutes
            yaml.safe_load(text)
        except ConfigTooLargeError as err:
            return f"{path}: not loaded: the YAML {err}"
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
            started = err.context_mark
            context = f" ({err.context} at line {started.line + 1})" if err.context and started is not None else ""
            cause = (
                "a config is a few levels deep"
                if "nesting depth" in str(err.problem)
                else "an unclosed bracket or quote, or a tab in the indentation, is the usual cause"
            )
            return f"{path}, {where}: YAML syntax error: {err.problem}{context}; fix the file there ({cause})"
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


__all__ = [
    "DEBUG_ENV", "PROG", "HeldOutput", "UsageError", "check_trainer_options", "debug_requested", "error_line",
    "one_line_usage_errors", "parse_error", "run_directory_error", "unknown_class", "user_message",
]
