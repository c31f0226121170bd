"""Every test-case-name header (the Emacs-style variable on a source file's first line)
names test modules that exist, so ``python -m twisted.trial --testmodule <file>`` and
editors that read it run that file's tests instead of failing on a missing module."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from twisted.scripts.trial import getTestModules

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for top in ("twisted_ftpd", "tap", "tests") for p in (REPO / top).rglob("*.py"))
NAMED = [(str(path.relative_to(REPO)), name) for path in SOURCES for name in getTestModules(path)]


def test_the_headers_are_found() -> None:
    named_by = {source for source, _ in NAMED}
    assert "twisted_ftpd/control/protocol.py" in named_by
    assert len(named_by) >= 30


@pytest.mark.parametrize(("source", "module"), NAMED)
def test_named_test_module_exists(source: str, module: str) -> None:
    assert module.startswith("tests."), (source, module)
    imported = importlib.import_module(module)
    assert Path(imported.__file__).name.startswith("test_"), (source, module)
