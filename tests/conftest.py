"""Checks that run after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import harness
from twisted_ftpd import cert


@pytest.fixture(scope="session")
def pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A self-signed certificate and key for localhost, in one PEM file (made once)."""
    path = tmp_path_factory.mktemp("tls") / "ftpd.pem"
    cert.write_pem(path, *cert.make_self_signed("localhost"))
    return str(path)


@pytest.fixture(autouse=True)
def _no_timers_outlive_their_sessions() -> Iterator[None]:
    """After each in-memory test, nothing a session started may outlive it: no delayed
    call, and no command still waiting (a login delay whose wait never ended kept
    servers from stopping)."""
    harness.LIVE.clear()
    yield
    live, harness.LIVE[:] = list(harness.LIVE), []
    for h in live:
        leftover = h.leftover_timers()
        assert not leftover, f"delayed calls left after the sessions closed: {leftover}"
        hung = h.hung_sessions()
        assert not hung, f"closed sessions still running a command: {hung}"
