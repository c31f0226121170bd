# -*- test-case-name: tests.test_config_file -*-
"""``--config FILE``: every command-line option, read from a TOML file.

The file is turned into command-line tokens placed *before* the real command
line, so there is one parser, one set of checks and one meaning for every
option, including options added later: whatever ``Options`` accepts as
``--long-name`` is a key ``long-name`` here. An option given on the command line
drops the file's key of the same name (so a repeatable option is replaced, not
extended). Errors are one-line ``UsageError``s naming the file and the key.
"""

from __future__ import annotations

import difflib
import getopt
import os
import re
import tomllib
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from twisted.python import reflect, usage

#: The option that names the file; it cannot appear inside one.
CONFIG_OPTION = "config"
# Options that act at once instead of setting something.
_NOT_SETTINGS = frozenset({CONFIG_OPTION, "help", "version"})

log = Logger()


def read(path: str) -> dict[str, Any]:
    """The TOML file's top-level table; UsageError (one line) when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise usage.UsageError(f"config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise usage.UsageError(f"config file {path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise usage.UsageError(f"config file {path}: not valid UTF-8") from None


def settable(options: usage.Options) -> dict[str, bool]:
    """Every key a config file may hold, mapped to whether it takes a value."""
    keys: dict[str, bool] = {}
    for spelled in options.longOpt:
        name = spelled.rstrip("=")
        if name not in _NOT_SETTINGS:
            keys[name] = spelled.endswith("=")
    return keys


def _single_valued(options: usage.Options) -> set[str]:
    """Options declared in ``optParameters``: given twice, the last wins, so a list
    makes no sense. (Options with their own ``opt_`` method may be repeatable.)"""
    parameters: list[list[Any]] = []
    reflect.accumulateClassList(type(options), "optParameters", parameters)
    return {parameter[0] for parameter in parameters}


def given_on_command_line(options: usage.Options, argv: list[str]) -> list[tuple[str, str]]:
    """``(long name, value)`` for each option in ``argv``, in order, as the parser
    will see them; empty when ``argv`` does not parse (the parser then says why)."""
    try:
        pairs, _ = getopt.getopt(argv, options.shortOpt, options.longOpt)
    except getopt.GetoptError:
        return []
    given = []
    for opt, value in pairs:
        name = opt.lstrip("-")
        name = options.synonyms.get(name) or options.synonyms.get(name.replace("-", "_"), name)
        given.append((name, value))
    return given


def _unknown(path: str, key: str, known: dict[str, bool]) -> usage.UsageError:
    hint = ""
    dashed = key.replace("_", "-")
    if dashed in known:
        hint = f" (write it as {dashed}, like --{dashed})"
    else:
        close = difflib.get_close_matches(dashed, list(known), n=1)
        if close:
            hint = f" (did you mean {close[0]}?)"
    return usage.UsageError(f"config file {path}: unknown key {key!r}{hint}")


def _scalar(path: str, key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise usage.UsageError(
        f"config file {path}: {key}: expected a string or a number, not {value!r}")


def tokens(options: usage.Options, path: str, table: dict[str, Any]) -> dict[str, list[str]]:
    """The command-line tokens for each key of ``table``; UsageError naming the key
    for an unknown key or a value of the wrong type."""
    known = settable(options)
    single = _single_valued(options)
    result: dict[str, list[str]] = {}
    for key, value in table.items():
        if key not in known:
            raise _unknown(path, key, known)
        if not known[key]:  # a flag
            if not isinstance(value, bool):
                raise usage.UsageError(
                    f"config file {path}: {key}: expected true or false, not {value!r}")
            result[key] = [f"--{key}"] if value else []
        elif isinstance(value, list):
            if key in single:
                raise usage.UsageError(
                    f"config file {path}: {key}: takes one value, not a list")
            result[key] = [f"--{key}={_scalar(path, key, item)}" for item in value]
        else:
            result[key] = [f"--{key}={_scalar(path, key, value)}"]
    return result


def _check_value(options: usage.Options, path: str, key: str, argv: list[str]) -> None:
    """Parse one key's tokens alone, so a bad value is reported with its key.
    (The checks between options run once, on the whole command line.)"""
    probe = type(options)()
    probe.postOptions = lambda: None  # type: ignore[method-assign]
    try:
        probe.parseOptions(argv)
    except usage.UsageError as e:
        reason = str(e).removeprefix("Parameter type enforcement failed: ")
        shown = " ".join(token.partition("=")[2] for token in argv)
        raise usage.UsageError(f"config file {path}: {key} = {shown!r}: {reason}") from None


def parse(options: usage.Options, argv: list[str],
          parse_argv: Callable[[list[str]], None]) -> None:
    """``parse_argv(argv)``, with the options of the ``--config`` file ``argv`` names, if
    any, put in front, less every key ``argv`` sets itself. A failed check that names
    an option the file set says so."""
    given = given_on_command_line(options, argv)
    paths = [value for name, value in given if name == CONFIG_OPTION]
    if not paths:
        parse_argv(argv)
        return
    path = paths[-1]
    on_command_line = {name for name, _ in given}
    from_file: list[str] = []
    keys: list[str] = []
    for key, key_tokens in tokens(options, path, read(path)).items():
        if key in on_command_line:
            continue
        _check_value(options, path, key, key_tokens)
        from_file += key_tokens
        keys.append(key)
    log.info("Options from config file {path}", path=os.path.abspath(path))
    try:
        parse_argv(from_file + argv)
    except usage.UsageError as e:
        named = [key for key in keys if re.search(rf"--{re.escape(key)}(?![\w-])", str(e))]
        if not named:
            raise
        where = ", ".join(named)
        raise usage.UsageError(f"{e} ({where} set in config file {path})") from None
