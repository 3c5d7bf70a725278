"""jsonargparse's parse errors as one line naming the option, the value, what was expected and the fix.

LightningCLI's parsers run with ``exit_on_error=False``, so a bad command line or config
file raises ``ArgumentError``; :func:`parse_error` reads what jsonargparse says (its messages
are the only interface it gives for which key and value failed) and words it for the user.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..config_limits import ConfigTooLargeError, check_yaml_size, limited_yaml_load
from ..console import PROG
from ..errors import UsageError, did_you_mean, one_line
from .commands import COMMANDS
from .user_errors import exception_chain

# The base class of what a class-path option takes, by the option's last name.
_BASES = {
    "data": ("lightning.pytorch", "LightningDataModule", "DataModule"),
    "optimizer": ("torch.optim", "Optimizer", "optimizer"),
    "lr_scheduler": ("torch.optim.lr_scheduler", "LRScheduler", "learning-rate scheduler"),
    "logger": ("lightning.pytorch.loggers", "Logger", "logger"),
    "callbacks": ("lightning.pytorch", "Callback", "callback"),
}
_KEY = re.compile(r'^\s*Parser key "([^"]+)"')


def parse_error(exc: BaseException, argv: Sequence[str], parsers: dict[str, Any]) -> UsageError:
    """A jsonargparse parse error (``exit_on_error=False``) as one line naming the option, value and fix.

    Args:
        exc: The ``ArgumentError`` (or the ``UnicodeDecodeError`` of a binary config file).
        argv: The command line, for the files and values it names.
        parsers: The subcommand parsers, for the options they know.
    """
    links = exception_chain(exc)
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
        known = [*getattr(parsers.get(subcommand), "_option_string_actions", {}), "--verbose"]  # --verbose: taken before parsing
        return UsageError(one_line(f"{flag} is not an option", did_you_mean(flag, known), help_hint))
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
        commands = [*re.findall(r"'(\w+)'", m[2]), *COMMANDS]
        return UsageError(
            one_line(f"unknown command {m[1]!r}", did_you_mean(m[1], commands), f"the commands are {', '.join(commands)}")
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
    return one_line(f"--{key} {shown}: expected {' or '.join(wanted)}", did_you_mean(value, names), help_hint)


def _wrong_type(key: str, expected: str, value: str, help_hint: str) -> str:
    """"--trainer.max_epochs abc: expected a whole number, e.g. 3" for jsonargparse's "Expected a <class 'int'>"."""
    shown = value if len(value) <= 80 else value[:77] + "..."
    option = f"--{key} {shown}" if key else shown
    if (literal := re.fullmatch(r"typing\.Literal\[(.*)\]", expected)) is not None:
        wanted = f"one of {literal[1]}"
        choices = [c.strip().strip("'\"") for c in literal[1].split(",")]
        return one_line(f"{option}: expected {wanted}", did_you_mean(value, choices), help_hint)
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
    return one_line(f"{option}: expected {wanted}", hint, help_hint)


def unknown_class(key: str, name: str) -> str:
    """"--data DigitModule: no DataModule of that name; did you mean DigitsDataModule? ..." for a class option."""
    option = key.split(".")[-1]
    module, base, what = _BASES.get(option, ("", "", "class"))
    known = sorted(_class_names(module, base)) if module else []
    listed = f"known: {', '.join(known)}" if known and len(known) <= 30 else ""
    return one_line(
        f"--{key} {name}: no {what} class of that name",
        did_you_mean(name, known),
        listed,
        "give one of those names or a full import path such as my_package.MyClass",
    )


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
    return one_line(f"--{key}.{option}: {owner} has no option {option!r}", did_you_mean(option, accepted), help_hint)


def _unreadable_config(argv: Sequence[str]) -> str | None:
    """The message for the first config file on the command line that is not text, or not valid YAML."""
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
