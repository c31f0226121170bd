"""bench/benchmark.py in its smallest mode against twisted-ftpd (one process and
``--workers 2``) and the Twisted floor (login and small-file workloads only): it
builds its C load generator, runs every workload and writes the JSON report and
the Markdown table. No timing is checked: only that it works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import require_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVERS = ["twisted-ftpd", "twisted-ftpd --workers 2", "Twisted floor"]
MEASURED = {"sessions": {"twisted-ftpd", "twisted-ftpd --workers 2"},
            "small_files": {"twisted-ftpd", "Twisted floor"},
            "anonymous_logins": {"twisted-ftpd", "Twisted floor"},
            "password_logins": {"twisted-ftpd", "Twisted floor"}}
WORKLOADS = {"retr", "stor", "small_files", "anonymous_logins", "password_logins",
             "sessions", "idle", "ftps_retr", "login_flood"}


def test_the_benchmark_runs_every_workload_and_reports_json(tmp_path: Path) -> None:
    require_binary("gcc")
    require_binary("curl")
    report_file = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "benchmark.py"), "--smoke", "--servers",
         ",".join(SERVERS), "--json", str(report_file), "--tmp", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads(report_file.read_text())
    assert set(report) >= {"machine", "settings", "servers", "workloads"}
    assert set(report["servers"]) == set(SERVERS)
    assert set(report["workloads"]) == WORKLOADS
    for name, workload in report["workloads"].items():
        assert workload["not_measured"] == {}, (name, workload["not_measured"])
        measured = {server for per_server in workload["metrics"].values()
                    for server in per_server}
        assert measured == MEASURED.get(name, {"twisted-ftpd"}), name
        for per_server in workload["metrics"].values():
            for stats in per_server.values():
                assert stats["min"] <= stats["median"] <= stats["max"]
                assert len(stats["runs"]) == 1
        errors = workload["metrics"].get("errors", {})
        assert all(stats["max"] == 0 for stats in errors.values()), (name, errors)
    assert report["workloads"]["retr"]["metrics"]["MB/s"]["twisted-ftpd"]["median"] > 0
    logins = report["workloads"]["anonymous_logins"]["metrics"]
    assert logins["logins/s"]["Twisted floor"]["median"] > 0
    assert set(logins) == {"logins/s", "server CPU µs/login", "errors"}
    files = report["workloads"]["small_files"]["metrics"]
    assert set(files) == {"files/s", "server CPU µs/file", "errors"}
    assert files["files/s"]["Twisted floor"]["median"] > 0

    table = result.stdout.splitlines()
    assert table[0] == "| workload | metric | " + " | ".join(SERVERS) + " |"
    assert any(line.startswith("| RETR big file (curl) | MB/s |") for line in table)
