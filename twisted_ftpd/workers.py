# -*- test-case-name: tests.test_workers,tests.integration.test_workers -*-
"""``--workers N``: N server processes on the same listening ports, so one server uses
N cores (pyftpdlib's ``worker_processes``, nginx's worker processes).

The parent does everything that needs privileges, once: it binds the sockets (port 21
as root), reads the TLS certificate and key and opens the xferlog, then drops its
privileges as a single server would (``--user``, or twistd's ``--uid``). Only then does
it start the workers (``spawnProcess`` of ``python -m twisted_ftpd.worker``), each with
its own reactor, the sockets at descriptors 3, 4... and its own share of
``--passive-ports``; it serves no FTP itself. The workers' log events reach it as JSON
lines and it writes them, with the worker's number and pid, to the one log (and the
xferlog), so nothing interleaves.

Sockets: for ``tcp:``/``tcp6:`` every worker gets a socket of its own on the same
address (``SO_REUSEPORT``), so the kernel spreads new connections evenly over the
workers instead of waking all of them for each one (where one worker, woken first,
would take a whole burst). A ``systemd:`` socket is one socket, which all workers share
and accept from in turn.

A worker that exits on its own (a crash, a signal) is reported and started again on
the same sockets and passive ports; the sessions it had are lost. When workers keep
dying (``RESTART_BURST`` restarts within ``RESTART_INTERVAL`` seconds, systemd's
default limits), or one fails while the server starts, the whole server stops, with
exit status 1 from ``server.py``. SIGTERM or SIGINT to the parent stops every worker
cleanly (``--shutdown-grace``), and a second one ends their grace.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet import defer, error
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger, eventFromJSON, globalLogPublisher
from twisted.python.failure import Failure

import twisted_ftpd
from twisted_ftpd import listen, privileges, worker
from twisted_ftpd.config import ServerConfig, split_passive_ports
from twisted_ftpd.service import FTPService, describe_root, describe_users
from twisted_ftpd.shutdown import force_on_second_signal
from twisted_ftpd.tls import TLSCredentials
from twisted_ftpd.xferlog import XferLog

__all__ = ["WorkerPool", "bind_sockets", "make_server"]

RESTART_BURST = 5  # restarts ...
RESTART_INTERVAL = 10.0  # ... within this many seconds stop the server (as systemd's)
KILL_AFTER = 30.0  # seconds past --shutdown-grace before a worker that will not stop is killed

log = Logger()


def make_server(config: ServerConfig, reactor: Any = None) -> FTPService | WorkerPool:
    """The service the launchers run: one process, or a pool of ``config.workers``."""
    if config.workers > 1:
        return WorkerPool(config, reactor)
    return FTPService(config, reactor)


class _Recorder:
    """Stands in for a reactor to learn what a ``tcp:``/``tcp6:`` endpoint would bind
    (Twisted's parser knows the description's syntax; nothing is bound here)."""

    def __init__(self) -> None:
        self.bind: tuple[int, int, str] | None = None

    def listenTCP(self, port: int, factory: object, backlog: int = 50,  # noqa: N802
                  interface: str = "") -> None:
        self.bind = (port, backlog, interface)


def _reuseport_sockets(port: int, backlog: int, interface: str, count: int
                       ) -> list[socket.socket]:
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted's ports
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((interface, port))
            port = sock.getsockname()[1]  # after port 0, the others join the port it got
            sock.listen(backlog)
            sock.setblocking(False)  # as adoptStreamPort requires
    except OSError as e:
        for sock in sockets:
            sock.close()
        raise error.CannotListenError(interface, port, e) from None
    return sockets


def bind_sockets(alternatives: list[str], count: int) -> list[socket.socket]:
    """The listening socket of each of ``count`` workers for one listener: the first of
    ``alternatives`` (endpoint descriptions, as ``listen.listen`` takes them) that binds.
    ``systemd:`` gives the same inherited socket to all."""
    for number, description in enumerate(alternatives, start=1):
        recorder = _Recorder()
        endpoint = listen.endpoint(recorder, description)
        fileno = getattr(endpoint, "fileno", None)
        if fileno is not None:  # an inherited socket, already checked by listen.endpoint
            sock = socket.socket(fileno=fileno)
            sock.setblocking(False)
            return [sock] * count
        endpoint.listen(None)
        assert recorder.bind is not None, description
        try:
            return _reuseport_sockets(*recorder.bind, count)
        except error.CannotListenError:
            if number == len(alternatives):
                raise
    raise listen.ListenError("nothing to listen on")


def describe(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _domain(sock: socket.socket) -> str:
    return "INET6" if sock.family == socket.AF_INET6 else "INET"


@dataclass
class _Slot:
    """One worker's place: its number, sockets and settings; outlives its processes."""

    index: int
    sockets: list[socket.socket]
    settings: bytes
    process: WorkerProcess | None = None
    ready: bool = False  # has served at least once
    restarts: list[float] = field(default_factory=list)


class WorkerProcess(ProcessProtocol):
    """One running worker: relays its log, says when it serves and when it ended."""

    def __init__(self, pool: WorkerPool, slot: _Slot) -> None:
        self.pool = pool
        self.slot = slot
        self.pid: int | None = None
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._buffers = {1: b"", 2: b""}

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        self.pid = self.transport.pid
        self.transport.write(self.slot.settings)

    def send(self, command: bytes) -> None:
        """``stop`` or ``force`` (worker.py reads them)."""
        if not self.ended.called:
            self.transport.write(command + b"\n")

    def childDataReceived(self, fd: int, data: bytes) -> None:  # noqa: N802
        lines = (self._buffers.get(fd, b"") + data).split(b"\n")
        self._buffers[fd] = lines.pop()
        for line in lines:
            self._line(fd, line)

    def _line(self, fd: int, line: bytes) -> None:
        if not line.strip():
            return
        if fd == 1:
            try:
                event = eventFromJSON(line.decode("utf-8", "replace"))
            except ValueError:
                event = None
            if event is not None:
                self.pool.relay(self, event)
                return
        log.warn("worker {index} (pid {pid}): {line}", index=self.slot.index, pid=self.pid,
                 line=line.decode("utf-8", "backslashreplace"))

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        for fd, rest in self._buffers.items():
            if rest:
                self._line(fd, rest)
        self.pool.ended(self, reason)
        self.ended.callback(None)


def _how(reason: Failure) -> str:
    value = reason.value
    if getattr(value, "signal", None):
        return f"was killed by signal {value.signal}"
    return f"exited with status {getattr(value, 'exitCode', '?')}"


class WorkerPool(service.Service):
    """The parent of ``config.workers`` worker processes (see the module docstring).

    ``failed`` fires (with SystemExit(1)) when the pool gives up on its workers; the
    launcher then stops. ``publish`` receives every relayed event (the global log)."""

    def __init__(self, config: ServerConfig, reactor: Any = None,
                 publish: Callable[[dict[str, Any]], None] = globalLogPublisher) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.config = config
        self.reactor = reactor
        self.publish = publish
        self.failed: defer.Deferred[None] = defer.Deferred()
        self.force_on_signal = False
        self.slots: list[_Slot] = []
        self.xferlog = XferLog(config.xferlog) if config.xferlog else None
        self._passive = split_passive_ports(config.passive_ports, config.workers)
        self._stopping = False
        self._announced = False

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process and s.process.pid]

    def privilegedStartService(self) -> None:  # noqa: N802 - Twisted's name
        super().privilegedStartService()
        self._bind()

    def startService(self) -> None:  # noqa: N802
        self._bind()
        super().startService()
        for slot in self.slots:
            self._spawn(slot)

    def _bind(self) -> None:
        """Bind, read what only the privileged parent may, then become ``--user``."""
        if self.slots:
            return
        config, count = self.config, self.config.workers
        control: list[list[socket.socket]] = []
        implicit: list[list[socket.socket]] = []
        # A haproxy: listener stays one in the workers (behind the same PROXY layer).
        proxied: list[bool] = []
        try:
            for group, alternatives in [
                    *((control, a) for a in listen.control_listeners(
                        config.listen, config.port, config.interface)),
                    *((implicit, a) for a in listen.implicit_listeners(
                        config.implicit_tls_listen, config.implicit_tls_port,
                        config.interface))]:
                group.append(bind_sockets(alternatives, count))
                proxied.append(listen.behind_proxy(alternatives[0])[1])
            tls_pem = None
            if config.tls_cert:
                tls_pem = (Path(config.tls_cert).read_text("ascii"),
                           Path(config.tls_key or config.tls_cert).read_text("ascii"))
                TLSCredentials.from_pem(*tls_pem, config.tls_cert, config.tls_key)
            if self.xferlog is not None:
                self.xferlog.open()
            if config.user is not None:
                privileges.switch_to(privileges.resolve(config.user, config.group))
        except Exception:
            for sock in {id(s): s for group in control + implicit for s in group}.values():
                sock.close()
            if self.xferlog is not None:
                self.xferlog.close()
            raise
        for index in range(count):
            sockets = [group[index] for group in control + implicit]
            descriptions = [
                f"{'haproxy:' if behind else ''}systemd:domain={_domain(sock)}:index={k}"
                for k, (sock, behind) in enumerate(zip(sockets, proxied, strict=True))]
            worker_config = replace(
                config, workers=1, passive_ports=self._passive[index],
                listen=tuple(descriptions[:len(control)]),
                implicit_tls_listen=tuple(descriptions[len(control):]),
                implicit_tls_port=None, user=None, group=None, xferlog=None, metrics=None,
                log_file=None, log_format="json")
            self.slots.append(_Slot(index, sockets, worker.encode(worker_config, tls_pem)))
        self._addresses = ", ".join(describe(group[0]) for group in control)
        if implicit:
            self._addresses += "; implicit FTPS on " + ", ".join(
                describe(group[0]) for group in implicit)

    def _spawn(self, slot: _Slot) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
        env["LISTEN_FDS"] = str(len(slot.sockets))
        env["LISTEN_FDNAMES"] = ":".join("ftp" for _ in slot.sockets)
        # The package as this process imports it, also when run from a checkout.
        package_parent = str(Path(twisted_ftpd.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            [package_parent, *filter(None, [env.get("PYTHONPATH")])])
        child_fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r"}
        for k, sock in enumerate(slot.sockets):
            child_fds[3 + k] = sock.fileno()
        slot.process = WorkerProcess(self, slot)
        self.reactor.spawnProcess(slot.process, sys.executable,
                                  [sys.executable, "-m", "twisted_ftpd.worker"],
                                  env=env, childFDs=child_fds)

    def relay(self, process: WorkerProcess, event: dict[str, Any]) -> None:
        """A worker's log event, into this process's log with the worker's number."""
        slot = process.slot
        if event.get(worker.READY):
            self._ready(process)
            return
        if event.get("log_namespace") == "twisted_ftpd.service" and str(
                event.get("log_format", "")).startswith("twisted-ftpd serving"):
            return  # the parent says it once, for all workers
        level = event.get("log_level")
        system = event.get("log_system") or (
            f"{event.get('log_namespace', '-')}#{getattr(level, 'name', '-')}")
        event.update(worker=slot.index, worker_pid=process.pid,
                     log_system=f"{system} worker {slot.index}")
        self.publish(event)
        if self.xferlog is not None:
            self.xferlog(event)

    def _ready(self, process: WorkerProcess) -> None:
        slot = process.slot
        if slot.ready:
            log.info("worker {index} started again as pid {pid}", index=slot.index,
                     pid=process.pid)
        slot.ready = True
        if not self._announced and all(s.ready for s in self.slots):
            self._announced = True
            log.info("twisted-ftpd serving {root} (users file {users}) on {addresses} as "
                     "{user}, in {n} worker processes (pids {pids})",
                     root=describe_root(self.config), users=describe_users(self.config.users),
                     addresses=self._addresses,
                     user=privileges.running_as(), n=len(self.slots),
                     pids=", ".join(map(str, self.pids)))

    def ended(self, process: WorkerProcess, reason: Failure) -> None:
        slot = process.slot
        if self._stopping:
            log.info("worker {index} (pid {pid}) stopped", index=slot.index, pid=process.pid)
            return
        how = _how(reason)
        if not slot.ready:
            self._give_up(f"worker {slot.index} (pid {process.pid}) {how} while starting")
            return
        now = self.reactor.seconds()
        slot.restarts = [t for t in slot.restarts if now - t < RESTART_INTERVAL] + [now]
        if len(slot.restarts) > RESTART_BURST:
            self._give_up(f"worker {slot.index} (pid {process.pid}) {how}, its "
                          f"{RESTART_BURST + 1}th end within {RESTART_INTERVAL:.0f} s")
            return
        log.error("worker {index} (pid {pid}) {how}; its sessions are lost; starting it "
                  "again", index=slot.index, pid=process.pid, how=how)
        self._spawn(slot)

    def _give_up(self, why: str) -> None:
        log.critical("{why}: stopping the server", why=why)
        if not self.failed.called:
            self.failed.errback(SystemExit(1))

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        """Tell every worker to stop (each with ``--shutdown-grace``); fires once all have
        exited. A worker still there ``KILL_AFTER`` seconds past the grace is killed."""
        super().stopService()
        self._stopping = True
        running = [s.process for s in self.slots if s.process and not s.process.ended.called]
        for process in running:
            process.send(b"stop")
        if self.force_on_signal:
            force_on_second_signal(self.reactor, self.force)
        deadline = self.reactor.callLater(self.config.shutdown_grace + KILL_AFTER, self._kill)
        d = defer.gatherResults([p.ended for p in running])

        def done(_: object) -> None:
            if deadline.active():
                deadline.cancel()
            for sock in {id(s): s for slot in self.slots for s in slot.sockets}.values():
                sock.close()
            if self.xferlog is not None:
                self.xferlog.close()

        return d.addCallback(done)

    def force(self) -> None:
        """End the workers' grace now (a second SIGTERM or SIGINT)."""
        for slot in self.slots:
            if slot.process is not None:
                slot.process.send(b"force")

    def _kill(self) -> None:
        for slot in self.slots:
            if slot.process is not None and not slot.process.ended.called:
                log.warn("worker {index} (pid {pid}) did not stop: killing it",
                         index=slot.index, pid=slot.process.pid)
                slot.process.transport.signalProcess("KILL")
