"""The README's "In your own tests" examples run, for real, as their readers would run them.

Each example is the fenced ``python`` block after a ``<!-- example: NAME -->`` line in
that section. The pytest one runs in its own pytest process (the fixtures come from the
installed ``pytest11`` entry point), the trial one under ``python -m twisted.trial``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SECTION = "## In your own tests"
SAFETY_TIMEOUT = 120  # seconds; a safety net, never a wait
EXAMPLE = re.compile(r"^<!-- example: (\w+) -->\n```python\n(.*?)^```$", re.M | re.S)


def _section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start:end if end != -1 else len(text)]


def _examples() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, code in EXAMPLE.findall(_section()):
        assert name not in found, f"two README examples named {name!r}"
        found[name] = code
    return found


def _env(*paths: Path) -> dict[str, str]:
    """This checkout first on the path, so the examples test these sources."""
    env = dict(os.environ)
    extra = [str(p) for p in paths] + [str(REPO)]
    if env.get("PYTHONPATH"):
        extra.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(extra)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=SAFETY_TIMEOUT, check=False)


def test_section_follows_ftps_and_has_both_examples() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings.index(SECTION) == headings.index("## FTPS") + 1
    examples = _examples()
    assert sorted(examples) == ["pytest", "pytest_tls", "trial"]
    assert "def test_" in examples["pytest"] and "ftp_server" in examples["pytest"]
    assert "FTPServerMixin" in examples["trial"] and "FTPClient" in examples["trial"]


@pytest.mark.parametrize("name", ["pytest", "pytest_tls"])
def test_pytest_example_passes(tmp_path: Path, name: str) -> None:
    test_file = tmp_path / "test_example.py"
    test_file.write_text(_examples()[name], encoding="utf-8")
    result = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                  cwd=tmp_path, env=_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in output, output


def test_trial_example_passes(tmp_path: Path) -> None:
    (tmp_path / "readme_trial_example.py").write_text(_examples()["trial"], encoding="utf-8")
    result = _run(["-m", "twisted.trial", "readme_trial_example"], cwd=tmp_path,
                  env=_env(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "PASSED" in output, output
    assert "DirtyReactorAggregateError" not in output, output
    assert "Ran 1 test" in output, output
