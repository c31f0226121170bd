"""The trial-style test classes pass under ``python -m twisted.trial tests`` too, not
only under pytest: nothing they need may come from a pytest fixture or marker."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.integration

SAFETY_TIMEOUT = 300  # seconds; a safety net, never a wait


def trial_style_modules() -> list[str]:
    """Test modules that define a class deriving from a trial/unittest TestCase."""
    found = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bases = {ast.unparse(base) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                 for base in node.bases}
        if bases & {"SynchronousTestCase", "TestCase", "unittest.TestCase",
                    "unittest.SynchronousTestCase"}:
            found.append(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


def test_trial_runs_the_whole_tests_package_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twisted.trial", f"--temp-directory={tmp_path / '_trial_temp'}",
         "tests"],
        cwd=REPO, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    summary = out.strip().splitlines()[-1]
    assert re.fullmatch(r"PASSED \((skips=\d+, )?successes=\d+\)", summary), out
    assert "[ERROR]" not in out and "[FAIL]" not in out, out
    modules = trial_style_modules()
    assert "tests.test_fs_files" in modules and "tests.test_fs_shell" in modules
    for module in modules:  # each one was found and run, not silently skipped
        assert re.search(rf"^{re.escape(module)}$", out, re.MULTILINE), (module, out)
