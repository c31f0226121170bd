"""The README's set-up commands are the ones CI really runs."""

from __future__ import annotations

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


def test_readme_commands_set_up_their_own_virtual_environment() -> None:
    # Debian's python3 refuses system-wide pip installs (externally-managed-environment)
    # and its python3-twisted is too old: both commands must work there as they stand.
    for command in _readme_commands()[:2]:
        steps = [step.strip() for step in command.split("&&")]
        assert steps[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"], command
        assert any(step.startswith("pip install ") for step in steps[2:]), command


def test_readme_and_ci_install_the_venv_module_debian_lacks() -> None:
    assert "apt-get install -y python3-venv" in (REPO / "README.md").read_text()
    installs = [line.split() for line in (REPO / ".ci" / "run").read_text().splitlines()
                if "apt-get install" in line]
    assert any("python3-venv" in words for words in installs)


def test_ci_does_not_prepare_the_environment_the_readme_command_makes() -> None:
    # CI must hit what a user with a fresh checkout hits: no venv made beforehand.
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    makes_venv = [line for line in ci_lines if "-m venv" in line or "activate" in line]
    assert makes_venv == [ci_lines[-1]]


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
    for option in expected:
        assert text.count(f"\n| `{option}") == 1, option
