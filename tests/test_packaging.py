"""Packaging: the twistd plugin ships from tap/ and twistd finds it after both a regular
and a strict editable install, in a fresh virtual environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parent.parent
LIST_PLUGINS = (
    "from twisted.plugin import getPlugins; from twisted.application.service import "
    "IServiceMaker; print(sorted(p.tapname for p in getPlugins(IServiceMaker)))"
)


def test_package_list_is_complete() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    expected = sorted(find_packages(str(REPO), include=["twisted_ftpd*"]) + ["twisted.plugins"])
    assert sorted(config["packages"]) == expected
    assert config["package-dir"] == {"twisted.plugins": "tap"}


def test_tap_has_no_package_init() -> None:
    # It would be installed as twisted/plugins/__init__.py, replacing Twisted's own.
    assert not (REPO / "tap" / "__init__.py").exists()
    assert (REPO / "tap" / "ftpd_plugin.py").exists()


def test_plugin_module_is_import_light() -> None:
    code = (
        "import sys; import twisted.plugins.ftpd_plugin as p; "
        "print(p.ftpd.tapname, 'twisted_ftpd.service' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO / "tap", check=True).stdout.split()
    assert out == ["ftpd", "False"]


def test_twistd_help_lists_ftpd_in_this_environment() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "--help"],
        capture_output=True, text=True, cwd="/",
    ).stdout
    assert any(line.split()[:1] == ["ftpd"] for line in out.splitlines()), out


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with Twisted from the package index, and a copy of
    the source tree (so the strict editable build does not write into the repo)."""
    base = tmp_path_factory.mktemp("venv")
    env_dir = base / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "twisted", "setuptools>=64", "wheel"], check=True, timeout=600)
    source = base / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    return base


def _env_run(env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(env / "env" / "bin" / "python"), *args], capture_output=True,
                          text=True, cwd="/", timeout=300)


def _taps(env: Path) -> list[str]:
    result = _env_run(env, "-c", LIST_PLUGINS)
    assert result.returncode == 0, result.stderr
    return eval(result.stdout)  # a printed list of strings


@pytest.mark.integration
def test_regular_and_strict_editable_installs_expose_the_plugin(fresh_venv: Path) -> None:
    pip = ("-m", "pip", "--disable-pip-version-check", "-q")
    source = str(fresh_venv / "src")
    assert "ftpd" not in _taps(fresh_venv)

    result = _env_run(fresh_venv, *pip, "install", "--no-build-isolation", source)
    assert result.returncode == 0, result.stderr
    assert "ftpd" in _taps(fresh_venv)
    help_text = _env_run(fresh_venv, "-c", "from twisted.scripts.twistd import run; run()",
                         "--help").stdout
    assert any(line.split()[:1] == ["ftpd"] for line in help_text.splitlines()), help_text
    site = _env_run(fresh_venv, "-c", "import twisted, os; print(os.path.dirname("
                    "twisted.__file__))").stdout.strip()
    init = Path(site) / "plugins" / "__init__.py"
    assert "pluginPackagePaths" in init.read_text()  # Twisted's own file is untouched

    result = _env_run(fresh_venv, *pip, "uninstall", "-y", "twisted-ftpd")
    assert result.returncode == 0, result.stderr
    assert "ftpd" not in _taps(fresh_venv)
    assert "pluginPackagePaths" in init.read_text()

    result = _env_run(fresh_venv, *pip, "install", "--no-build-isolation", "-e", source,
                      "--config-settings", "editable_mode=strict")
    assert result.returncode == 0, result.stderr
    assert "ftpd" in _taps(fresh_venv)
