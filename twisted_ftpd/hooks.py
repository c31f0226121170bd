# -*- test-case-name: tests.test_hooks,tests.integration.test_upload_hooks -*-
"""``--upload-check`` and ``--on-upload``: the administrator's commands around an upload.

The check runs on the complete upload *before* it replaces anything, so a
virus scanner can veto it; the on-upload command runs once it has landed.
Both are ``/bin/sh -c CMD NAME FILE`` children started with ``spawnProcess``
(never blocking the reactor), with the upload described in ``FTPD_*``
environment variables, at most ``--hook-concurrency`` of each kind at once,
killed (their whole process group) after ``--hook-timeout`` seconds, their
output kept up to ``OUTPUT_LIMIT`` bytes.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, error
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_ftpd.interfaces import IStagedWriteFile, IWriteFile
from twisted_ftpd.protocol.errors import LocalError, UploadRejected
from twisted_ftpd.protocol.values import Staged
from twisted_ftpd.units import at_least

log = Logger()

SHELL = "/bin/sh"
OUTPUT_LIMIT = 4096  # bytes of stdout+stderr kept; the rest is read and dropped
REASON_LIMIT = 200  # characters of the first output line that reach the client
# on-upload runs waiting for a slot beyond this many are skipped (and logged), so a
# burst of uploads with a slow command cannot pile up without bound.
BACKLOG_LIMIT = 1000
# spawnProcess cannot start a child in a new session or process group (posix_spawn's
# setpgroup is not exposed), and a timed-out hook must be killed with everything it
# started, or a grandchild holding its output pipe open keeps it "running". So the
# child is this interpreter for one call: setsid(), then exec /bin/sh.
_NEW_SESSION = "import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])"

Spawn = Callable[..., Any]  # IReactorProcess.spawnProcess
Runner = Callable[..., defer.Deferred]


@dataclass(frozen=True)
class UploadInfo:
    """Who uploaded what, for the hooks' environment."""

    path: str  # the FTP path, as the client sees it
    user: str
    client: str  # the client's address
    session: str  # the control connection's id in the logs


@dataclass(frozen=True)
class HookResult:
    """How a hook ended: ``ok`` for exit status 0, else ``reason`` says why."""

    ok: bool
    reason: str
    output: str


def environment(info: UploadInfo, file: str, size: int) -> dict[str, str]:
    """The server's environment (PATH, locale...) plus the ``FTPD_*`` variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FTPD_")}
    env.update(FTPD_FILE=file, FTPD_PATH=info.path, FTPD_USER=info.user, FTPD_SIZE=str(size),
               FTPD_CLIENT=info.client, FTPD_SESSION=info.session)
    return env


def first_line(output: bytes) -> str:
    """The first non-blank line of ``output``, printable and short: the 550 reason."""
    for line in output.decode("utf-8", "replace").splitlines():
        text = "".join(c if c.isprintable() else "?" for c in line.strip())
        if text:
            return text[:REASON_LIMIT]
    return ""


# Twisted reaps children when SIGCHLD arrives, which a reactor running without signal
# handlers (one in a thread, as twisted_ftpd.testing.ServerThread runs) never sees, and
# its one try when the pipes close can come before the child is a zombie. So once the
# pipes are closed, the child is asked for again, after these many seconds, doubling.
REAP_FIRST, REAP_MOST = 0.01, 1.0


class _HookProcess(ProcessProtocol):
    """One hook child: no input, output kept up to OUTPUT_LIMIT, ``ended`` on exit."""

    def __init__(self, clock: IReactorTime) -> None:
        self.output = bytearray()
        self.ended: defer.Deferred[BaseException] = defer.Deferred()
        self.timed_out = False
        self.stopped = False  # killed because the server is stopping
        self._clock = clock
        self._open_pipes = {1, 2}
        self._reaper: Any = None

    def connectionMade(self) -> None:
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        room = OUTPUT_LIMIT - len(self.output)
        if room > 0:
            self.output += data[:room]

    errReceived = outReceived

    def childConnectionLost(self, childFD: int) -> None:  # noqa: N803
        self._open_pipes.discard(childFD)
        if not self._open_pipes and self._reaper is None and not self.ended.called:
            self._reaper = self._clock.callLater(REAP_FIRST, self._reap, REAP_FIRST)

    def _reap(self, delay: float) -> None:
        self._reaper = None
        reap = getattr(self.transport, "reapProcess", None)
        if reap is not None:
            reap()  # calls processEnded if the child has exited
        if not self.ended.called:
            delay = min(delay * 2, REAP_MOST)
            self._reaper = self._clock.callLater(delay, self._reap, delay)

    def processEnded(self, reason: Failure) -> None:
        if self._reaper is not None and self._reaper.active():
            self._reaper.cancel()
        self._reaper = None
        if not self.ended.called:
            self.ended.callback(reason.value)

    def kill(self) -> None:
        """The hook ran past its timeout."""
        self.timed_out = True
        self._kill_group()

    def stop(self) -> None:
        """The server is stopping: no hook outlives it."""
        self.stopped = True
        self._kill_group()

    def _kill_group(self) -> None:
        """Kill the hook's whole process group, and stop waiting for its pipes."""
        pid = getattr(self.transport, "pid", None)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:  # not a group leader yet (still starting): the child alone
                try:
                    self.transport.signalProcess("KILL")
                except error.ProcessExitedAlready:
                    pass
        self.transport.loseConnection()


def _verdict(ended: BaseException, timed_out: bool, timeout: float) -> tuple[bool, str]:
    if timed_out:
        return False, f"timed out after {timeout:g} s"
    if isinstance(ended, error.ProcessDone):
        return True, ""
    if isinstance(ended, error.ProcessTerminated):
        if ended.signal is not None:
            return False, f"killed by signal {ended.signal}"
        return False, f"exit status {ended.exitCode}"
    return False, str(ended)


class HookRunner:
    """Runs commands as ``/bin/sh -c CMD NAME FILE``, ``concurrency`` at a time, each
    for at most ``timeout`` seconds on ``clock``."""

    def __init__(self, spawn: Spawn, clock: IReactorTime, concurrency: int, timeout: float) -> None:
        self._spawn = spawn
        self._clock = clock
        self._timeout = timeout
        self.slots = defer.DeferredSemaphore(concurrency)
        self._live: set[_HookProcess] = set()  # started and not yet ended

    @property
    def waiting(self) -> int:
        """Runs waiting for a slot."""
        return len(self.slots.waiting)

    def stop(self) -> int:
        """Kill every hook still running (the server is stopping); how many there were."""
        live = list(self._live)
        for process in live:
            process.stop()
        return len(live)

    async def run(self, command: str, name: str, file: str, env: dict[str, str]) -> HookResult:
        """Run ``command`` once a slot is free; never raises (a failure to start is a
        result like any other)."""
        await self.slots.acquire()
        try:
            return await self._run(command, name, file, env)
        finally:
            self.slots.release()

    async def _run(self, command: str, name: str, file: str, env: dict[str, str]) -> HookResult:
        process = _HookProcess(self._clock)
        args = [sys.executable, "-I", "-S", "-c", _NEW_SESSION, SHELL, "-c", command, name, file]
        try:
            self._spawn(process, sys.executable, args, env=env,
                        childFDs={0: "w", 1: "r", 2: "r"})
        except Exception as e:
            log.failure("Could not start the {name} command", name=name)
            return HookResult(False, f"could not be started ({e.__class__.__name__})", "")
        timer = self._clock.callLater(self._timeout, process.kill)
        self._live.add(process)
        try:
            ended = await process.ended
        finally:
            self._live.discard(process)
            if timer.active():
                timer.cancel()
        ok, why = _verdict(ended, process.timed_out, self._timeout)
        if process.stopped:
            ok, why = False, "stopped with the server"
        output = bytes(process.output)
        text = output.decode("utf-8", "replace")
        if ok:
            return HookResult(True, "", text)
        return HookResult(False, ("" if process.timed_out else first_line(output)) or why, text)


def thread_runner(reactor: Any) -> Runner:
    """Blocking calls in ``reactor``'s thread pool."""
    from twisted.internet.threads import deferToThreadPool

    def run(f: Callable[..., Any], *args: Any) -> defer.Deferred:
        return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    return run


def _spool(data: bytes) -> str:
    """Write an in-memory upload to a private temporary file (blocking)."""
    fd, path = tempfile.mkstemp(prefix="twisted-ftpd-upload-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        log.failure("Could not remove the spooled upload {path}", path=path)


class UploadHooks:
    """One server's ``--upload-check`` and ``--on-upload`` commands (either may be None).

    Checks and on-upload commands have a runner (slots) each, so a slow
    on-upload command never holds back the 226 of another upload.
    """

    def __init__(self, check: str | None, on_upload: str | None, spawn: Spawn,
                 clock: IReactorTime, run: Runner, concurrency: int = 4,
                 timeout: float = 60.0) -> None:
        self.check_command = check
        self.on_upload_command = on_upload
        self._checks = HookRunner(spawn, clock, concurrency, timeout)
        self._after = HookRunner(spawn, clock, concurrency, timeout)
        self._run = run
        self.running: set[defer.Deferred[None]] = set()  # on-upload runs not yet ended

    @classmethod
    def from_config(cls, config: Any, reactor: Any, clock: IReactorTime) -> UploadHooks | None:
        """The hooks ``config`` names, or None when it names neither."""
        if config.upload_check is None and config.on_upload is None:
            return None

        def spawn(*args: Any, **kwargs: Any) -> Any:
            return reactor.spawnProcess(*args, **kwargs)

        return cls(config.upload_check, config.on_upload, spawn, clock,
                   thread_runner(reactor), config.hook_concurrency, config.hook_timeout)

    @property
    def checking(self) -> bool:
        return self.check_command is not None

    def stop(self) -> defer.Deferred[int]:
        """The server is stopping and its sessions are gone: kill the hooks still running
        (a check's upload is then rejected; an on-upload command just ends), so none is
        left behind. Fires with how many were killed, once the on-upload runs ended."""
        killed = self._checks.stop() + self._after.stop()
        if killed:
            log.warn("Killed {n} hook command(s) still running as the server stopped",
                     n=killed)
        ended = defer.DeferredList(list(self.running), consumeErrors=True)
        return ended.addCallback(lambda _: killed)

    async def check(self, info: UploadInfo, staged: Staged) -> HookResult:
        """Run the upload check on ``staged``; ok when there is no check."""
        if self.check_command is None:
            return HookResult(True, "", "")
        result = await self._with_file(self._checks, self.check_command, "upload-check",
                                       info, staged)
        if not result.ok:
            log.warn("Upload of {path!r} by {user!r} from {client} rejected by --upload-check: "
                     "{reason}", path=info.path, user=info.user, client=info.client,
                     reason=result.reason, output=result.output)
        return result

    def landed(self, info: UploadInfo, staged: Staged) -> defer.Deferred[None] | None:
        """Start the on-upload command for an upload that landed (fire and forget:
        its failures are logged). The Deferred fires when it has ended."""
        if self.on_upload_command is None:
            return None
        if self._after.waiting >= BACKLOG_LIMIT:
            log.warn("--on-upload skipped for {path!r}: {n} runs already waiting",
                     path=info.path, n=self._after.waiting)
            return None
        if staged.final is not None:  # the file under its own name now, not the staged one
            staged = Staged(staged.final, staged.size, staged.final, staged.data)
        d = defer.ensureDeferred(self._on_upload(info, staged))
        self.running.add(d)
        d.addBoth(lambda _: self.running.discard(d))
        return d

    async def _on_upload(self, info: UploadInfo, staged: Staged) -> None:
        assert self.on_upload_command is not None
        try:
            result = await self._with_file(self._after, self.on_upload_command, "on-upload",
                                           info, staged)
        except Exception:
            log.failure("--on-upload for {path!r} failed", path=info.path)
            return
        if not result.ok:
            log.warn("--on-upload for {path!r} by {user!r} failed: {reason}", path=info.path,
                     user=info.user, reason=result.reason, output=result.output)

    async def _with_file(self, runner: HookRunner, command: str, name: str, info: UploadInfo,
                         staged: Staged) -> HookResult:
        """Run with ``staged``'s file; an in-memory upload is spooled to a temporary
        file for the command's lifetime."""
        if staged.file is not None:
            return await runner.run(command, name, staged.file,
                                    environment(info, staged.file, staged.size))
        try:
            spooled = await self._run(_spool, staged.data or b"")
        except OSError as e:
            log.failure("Could not spool {path!r} for the {name} command", path=info.path,
                        name=name)
            return HookResult(False, f"could not be started ({e.strerror or e})", "")
        try:
            return await runner.run(command, name, spooled,
                                    environment(info, spooled, staged.size))
        finally:
            await self._run(_unlink, spooled)


@implementer(IWriteFile)
class HookedWriteFile:
    """An upload whose commit first passes the upload check, and which remembers
    what landed for the on-upload command (``landed``).

    While uploads are checked, nothing unchecked lands: an abort discards the
    upload instead of keeping a partial, and a rejection discards it too, so an
    old file under the name stays untouched.
    """

    def __init__(self, target: IWriteFile, hooks: UploadHooks, info: UploadInfo) -> None:
        self._target = target
        self._hooks = hooks
        self._info = info
        self.landed: Staged | None = None

    def write(self, data: bytes) -> defer.Deferred[None]:
        return self._target.write(data)

    def commit(self) -> defer.Deferred[None]:
        return defer.ensureDeferred(self._commit())

    def abort(self) -> defer.Deferred[None]:
        if self._hooks.checking and IStagedWriteFile.providedBy(self._target):
            return self._target.discard()
        return self._target.abort()

    async def _commit(self) -> None:
        if not IStagedWriteFile.providedBy(self._target):
            if self._hooks.checking:  # a backend that cannot show the file: fail closed
                log.error("--upload-check: {target!r} cannot be checked; upload refused",
                          target=self._target)
                await self._target.abort()
                raise LocalError(self._info.path)
            await self._target.commit()
            return
        staged = await self._target.staged()
        result = await self._hooks.check(self._info, staged)
        if not result.ok:
            await self._target.discard()
            raise UploadRejected(self._info.path, result.reason)
        await self._target.commit()
        self.landed = staged


parse_concurrency = at_least(1)  # --hook-concurrency


def parse_timeout(text: str) -> float:
    """``--hook-timeout``: seconds, more than 0."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(f"expected a number of seconds above 0, got {text}")
    return value
