"""The README's set-up commands are the ones CI really runs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    return [line.strip() for line in lines[:12] if line.startswith("    ")]


def test_readme_opens_with_server_and_test_commands() -> None:
    server, tests = _readme_commands()[:2]
    assert server.endswith("python3 server.py")
    assert "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = _readme_commands()[1]
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert ci_lines[-1] == test_command  # nothing runs after it, so its status is CI's


def _steps(command: str) -> list[str]:
    return [step.strip() for step in command.split("&&")]


def test_readme_commands_do_all_set_up_themselves() -> None:
    # A fresh Debian 12: no venv module (python3-venv), a python3 that refuses
    # system-wide pip installs (externally-managed-environment) and a python3-twisted
    # too old to use. Both commands must work there as they stand.
    for command in _readme_commands()[:2]:
        steps = _steps(command)
        assert steps[0] == "apt-get update", command
        assert steps[1].startswith("apt-get install -y python3-venv"), command
        assert steps[2:4] == ["python3 -m venv .venv", ". .venv/bin/activate"], command
        assert any(step.startswith("pip install ") for step in steps[4:]), command


def test_test_command_installs_every_client_the_tests_require() -> None:
    installed = set(_steps(_readme_commands()[1])[1].split()[3:])
    required = set()
    for path in (REPO / "tests").rglob("*.py"):
        required.update(re.findall(r'require_binary\("([\w-]+)"', path.read_text()))
    packages = {"gnutls-cli": "gnutls-bin", "ncftpget": "ncftp", "ncftpput": "ncftp",
                "ip": "iproute2", "initdb": "postgresql"}
    assert required, "no require_binary calls found"
    assert {packages.get(name, name) for name in required} <= installed


def test_ci_does_not_prepare_the_environment_the_readme_command_makes() -> None:
    # CI must hit what a user with a fresh checkout hits: nothing set up beforehand.
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    sets_up = [line for line in ci_lines if "-m venv" in line or "activate" in line
               or "apt-get" in line or "pip " in line]
    assert sets_up == [ci_lines[-1]]


def _table_after(header: str) -> list[str]:
    """The rows of the Markdown table starting at ``header``, up to its first non-row line."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index(header)
    rows = []
    for line in lines[start + 2:]:  # past the header and the |---| line
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_option_table_is_one_table_with_every_option() -> None:
    from twisted_ftpd.config import Options

    rows = _table_after("| option | default | meaning |")
    documented = {row.split("`")[1].split()[0] for row in rows}
    options = Options()
    expected = {f"--{name.rstrip('=')}" for name in options.longOpt} - {"--help", "--version"}
    assert documented == expected
    # Nothing that looks like a stray row of it anywhere else (a blank line splits a table).
    text = (REPO / "README.md").read_text()
    for option in expected:  # "--user" must not count the "--users" row
        assert len(re.findall(rf"\n\| `{re.escape(option)}[ `]", text)) == 1, option
