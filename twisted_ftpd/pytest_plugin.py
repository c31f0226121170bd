# -*- test-case-name: tests.test_testing_pytest -*-
"""pytest fixtures for an in-process FTP server (registered through ``pytest11``).

Each server runs on its own reactor in a background thread, so the fixtures work
the same in plain synchronous tests (ftplib, subprocess clients) and in tests
driven by pytest-twisted, whose reactor only turns while a test awaits.

- ``ftp_server``: a server with user ``alice``/``secret`` on a temporary root.
- ``ftp_server_tls``: the same with FTPS (self-signed certificate at ``.cert``).
- ``ftp_server_factory``: call it with ``start_server`` arguments for more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from twisted_ftpd.testing import RunningServer, ServerThread


@pytest.fixture
def ftp_server_factory() -> Iterator[Callable[..., RunningServer]]:
    started: list[ServerThread] = []

    def make(*args: Any, **kwargs: Any) -> RunningServer:
        thread = ServerThread(*args, **kwargs)
        started.append(thread)
        return thread.start()

    yield make
    for thread in reversed(started):
        thread.stop()


@pytest.fixture
def ftp_server(ftp_server_factory: Callable[..., RunningServer]) -> RunningServer:
    return ftp_server_factory()


@pytest.fixture
def ftp_server_tls(ftp_server_factory: Callable[..., RunningServer]) -> RunningServer:
    return ftp_server_factory(tls=True)
