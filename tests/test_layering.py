"""The import layering, read from the source with ``ast`` (nothing is imported).

``protocol/`` and ``listing/`` are the pure layer: they import the standard
library and each other, nothing else (no Twisted, no zope, no other part of
the package). ``control/`` sits above everything but the top layer (the modules
that assemble or drive a whole server), so no lower module imports it. Every
``import`` and ``from ... import`` counts, relative ones included, wherever it
stands: inside a function, a ``try`` or an ``if TYPE_CHECKING:`` block.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "twisted_ftpd"

PURE = ("twisted_ftpd.protocol", "twisted_ftpd.listing")
CONTROL = "twisted_ftpd.control"
# The top layer: modules that put a whole server together (or drive one for tests)
# and so may import control/. tap/ is outside the package and top layer too.
TOP = frozenset({
    "twisted_ftpd.service",
    "twisted_ftpd.cli",
    "twisted_ftpd.testing",
    "twisted_ftpd.faults",
    "twisted_ftpd.pytest_plugin",
})
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def imported_names(module: str, source: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything ``source`` imports, as absolute names.

    ``from a.b import c`` yields ``a.b.c``: ``c`` may be a submodule, and this
    is how ``from twisted_ftpd import control`` is seen to import control/.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    yield node.lineno, "." * node.level + (node.module or "")  # beyond the top
                    continue
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                source_module = f"{base}.{node.module}" if node.module else base
            else:
                source_module = node.module or ""
            for alias in node.names:
                yield node.lineno, source_module if alias.name == "*" else (
                    f"{source_module}.{alias.name}")


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """What ``module`` (with text ``source``) imports against the layering."""
    found = []
    pure = any(_within(module, p) for p in PURE)
    lower = not _within(module, CONTROL) and module not in TOP
    for line, name in sorted(imported_names(module, source, is_package)):
        if pure and not (name.split(".")[0] in STDLIB or any(_within(name, p) for p in PURE)):
            found.append(f"{module}:{line}: the pure layer imports {name}")
        elif lower and _within(name, CONTROL):
            found.append(f"{module}:{line}: a lower layer imports {name}")
    return found


def _modules() -> list[tuple[str, Path, bool]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        found.append((".".join(parts[:-1] if is_package else parts), path, is_package))
    return found


MODULES = _modules()


def test_every_module_is_read() -> None:
    names = {name for name, _, _ in MODULES}
    for expected in ("twisted_ftpd.protocol.replies", "twisted_ftpd.listing.ls",
                     "twisted_ftpd.fs.shell", "twisted_ftpd.control.protocol",
                     "twisted_ftpd.interfaces", "twisted_ftpd.protocol"):
        assert expected in names
    assert TOP <= names  # a renamed top-layer module must be renamed here too


@pytest.mark.parametrize(("module", "path", "is_package"), MODULES,
                         ids=[name for name, _, _ in MODULES])
def test_module_respects_the_layering(module: str, path: Path, is_package: bool) -> None:
    assert violations(module, path.read_text(encoding="utf-8"), is_package) == []


# --- the checker itself --------------------------------------------------------


def test_a_third_party_import_in_the_pure_layer_is_caught() -> None:
    assert violations("twisted_ftpd.protocol.fake", "import twisted\n") == [
        "twisted_ftpd.protocol.fake:1: the pure layer imports twisted"]
    assert violations("twisted_ftpd.listing.fake", "from zope.interface import Interface\n")
    assert violations("twisted_ftpd.protocol.fake", "from twisted_ftpd import interfaces\n")
    assert violations("twisted_ftpd.protocol.fake", "from ..fs import shell\n")
    assert violations("twisted_ftpd.protocol", "from ..auth import userdb\n", is_package=True)


def test_hidden_imports_are_caught() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from twisted.internet.interfaces import IReactorTime\n"
        "def later():\n"
        "    import OpenSSL.SSL\n"
        "try:\n"
        "    import zope.interface\n"
        "except ImportError:\n"
        "    pass\n"
    )
    assert [v.split(": ", 1)[0] for v in violations("twisted_ftpd.listing.fake", source)] == [
        "twisted_ftpd.listing.fake:3", "twisted_ftpd.listing.fake:5", "twisted_ftpd.listing.fake:7"]


def test_the_pure_layer_may_import_the_stdlib_and_itself() -> None:
    source = (
        "from __future__ import annotations\n"
        "import os.path, stat\n"
        "from collections.abc import Iterator\n"
        "from twisted_ftpd.protocol import replies\n"
        "from twisted_ftpd.listing.ls import list_lines\n"
        "from . import paths\n"
        "from .values import FileInfo\n"
        "from ..listing import mlsx\n"
    )
    assert violations("twisted_ftpd.protocol.fake", source) == []
    assert violations("twisted_ftpd.listing", "from . import ls\n", is_package=True) == []


def test_control_imported_from_below_is_caught() -> None:
    for source in ("import twisted_ftpd.control.factory\n",
                   "from twisted_ftpd import control\n",
                   "from twisted_ftpd.control.dispatch import handles\n",
                   "from ..control import protocol\n",
                   "def f():\n    from twisted_ftpd.control import factory\n"):
        assert violations("twisted_ftpd.fs.fake", source), source
    assert violations("twisted_ftpd.tls", "from .control import tls_session\n")
    assert violations("twisted_ftpd.data", "from ..control import factory\n", is_package=True)


def test_control_and_the_top_layer_may_import_control() -> None:
    source = "from twisted_ftpd.control.factory import FTPFactory\nfrom .dispatch import handles\n"
    assert violations("twisted_ftpd.control.fake", source) == []
    assert violations("twisted_ftpd.service", "from twisted_ftpd.control import factory\n") == []
    assert violations("twisted_ftpd.fs.fake", "from twisted_ftpd.controller import x\n") == []
