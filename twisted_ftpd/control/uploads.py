# -*- test-case-name: tests.test_quota,tests.test_hooks -*-
"""What an upload passes besides its bytes: the user's quota, ``--upload-check`` and
``--on-upload``; and what a delete or a rename over a file gives back to the quota.

STOR, APPE and STOU open their file through an ``Upload``: it checks the
quota's room (552 before the 150 when there is none), hands the data channel
its receive limit, wraps the file so that its commit runs the upload check,
and, in ``end()``, settles the quota from what is on disk and starts the
on-upload command for an upload that landed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from twisted_ftpd.auth.userdb import ANONYMOUS, ANONYMOUS_NAMES
from twisted_ftpd.hooks import HookedWriteFile, UploadHooks, UploadInfo
from twisted_ftpd.interfaces import IUsageShell, IWriteFile
from twisted_ftpd.protocol.addresses import normalize
from twisted_ftpd.protocol.errors import (
    FTPError,
    InPlaceWhileChecked,
    LocalError,
    QuotaUnknown,
    UsersUnavailable,
)
from twisted_ftpd.protocol.paths import display
from twisted_ftpd.protocol.values import Segments
from twisted_ftpd.quota import Charge, HomeUsage, QuotaLimits

from .context import CommandContext

log = Logger()


def _account(ctx: CommandContext) -> str:
    """The users.db line a session's USER name logs in to."""
    name = ctx.session.user
    return ANONYMOUS if name.lower() in ANONYMOUS_NAMES else name


async def _limits(ctx: CommandContext) -> QuotaLimits | None:
    """The user's quota, read from users.db now (so an edit counts at the next upload)."""
    if ctx.server.lookup_user is None:
        return None
    try:
        record = await ctx.server.lookup_user(_account(ctx))
    except UsersUnavailable:  # the session goes on; this upload waits for the database
        raise QuotaUnknown() from None
    return QuotaLimits.from_options(record.options) if record is not None else None


async def _size(shell: Any, path: Segments, *, follow: bool) -> int | None:
    """The size of the regular file at ``path`` (None: none there)."""
    try:
        info = await (shell.stat(path) if follow else shell.lstat(path))
    except FTPError:
        return None
    return info.size if info.is_file else None


async def _home(ctx: CommandContext, shell: Any, limits: QuotaLimits | None,
                ) -> HomeUsage | None:
    """The measured usage of ``shell``'s home: always for a user with a quota, otherwise
    only when another user's quota counts it already."""
    if not IUsageShell.providedBy(shell):
        if limits is not None:  # a quota that cannot be counted is not silently ignored
            log.error("{user!r} has a quota, but the shell {shell!r} cannot measure it",
                      user=ctx.session.user, shell=shell)
            raise LocalError()
        return None
    quotas = ctx.server.quotas
    home = (quotas.home if limits is not None else quotas.tracked)(shell.usage_key)
    if home is not None:
        await home.current(shell.disk_usage)
    return home


class Upload:
    """One STOR, APPE or STOU: open its file through this, then ``end()`` it."""

    def __init__(self, ctx: CommandContext) -> None:
        self._ctx = ctx
        # Kept: a client that disconnects mid-upload logs out (ctx.shell becomes None)
        # before end() settles the count.
        self._shell = ctx.shell
        self._hooks: UploadHooks | None = ctx.server.upload_hooks
        self._charge: Charge | None = None
        self._path: Segments | None = None
        self._before: int | None = None
        self._hooked: HookedWriteFile | None = None
        self._info: UploadInfo | None = None

    @property
    def limit(self) -> Charge | None:
        """The data channel's receive limit (None: no quota counts this upload)."""
        return self._charge

    @property
    def _checking(self) -> bool:
        return self._hooks is not None and self._hooks.checking

    async def open_for_writing(self, path: Segments, offset: int) -> IWriteFile:
        """STOR (REST ``offset`` > 0: into the existing file, refused while checked)."""
        if offset and self._checking:
            raise InPlaceWhileChecked(display(path), "REST+STOR")
        await self._start(path, lambda before: before - offset if offset else before)
        return self._wrap(await self._shell.open_for_writing(path, offset or None), path)

    async def open_for_appending(self, path: Segments) -> IWriteFile:
        """APPE; while checked, only to a new name, written aside like STOR."""
        shell = self._shell
        if self._checking:
            if await _exists(shell, path):
                raise InPlaceWhileChecked(display(path), "APPE")
            await self._start(path, lambda before: 0)
            return self._wrap(await shell.open_for_writing(path, None), path)
        await self._start(path, lambda before: 0)
        return self._wrap(await shell.open_for_appending(path), path)

    async def open_unique(self, directory: Segments, prefix: str) -> tuple[str, IWriteFile]:
        """STOU: always a new file."""
        await self._start(None, lambda before: 0)
        name, target = await self._shell.open_unique(directory, prefix)
        self._path = (*directory, name)
        return name, self._wrap(target, self._path)

    async def _start(self, path: Segments | None, credit: Callable[[int], int]) -> None:
        """Claim room in a counted home; ``credit(old size)`` is what the upload frees
        of the file it replaces."""
        limits = await _limits(self._ctx)
        home = await _home(self._ctx, self._shell, limits)
        if home is None:
            return
        self._path = path
        if path is not None:
            self._before = await _size(self._shell, path, follow=True)
        freed = credit(self._before) if self._before is not None else 0
        self._charge = home.start(limits, freed, new_file=self._before is None)

    def _wrap(self, target: IWriteFile, path: Segments) -> IWriteFile:
        if self._hooks is None:
            return target
        ctx = self._ctx
        self._info = UploadInfo(path=display(path), user=_account(ctx),
                                client=normalize(ctx.peer_host),
                                session=getattr(ctx, "session_id", ""))
        self._hooked = HookedWriteFile(target, self._hooks, self._info)
        return self._hooked

    async def end(self) -> None:
        """The transfer is over (the file settled): count what is on disk now, and
        start the on-upload command if the upload landed. Never raises."""
        charge, self._charge = self._charge, None
        try:
            if charge is not None:
                after = None
                try:
                    if self._path is not None:
                        after = await _size(self._shell, self._path, follow=True)
                finally:  # the upload's hold on the room ends whatever happens
                    charge.home.settle(charge, self._before, after)
            if self._hooked is not None and self._hooked.landed is not None:
                assert self._hooks is not None and self._info is not None
                self._hooks.landed(self._info, self._hooked.landed)
        except Exception:
            log.failure("Settling the upload of {path!r} failed", path=self._path)


async def _exists(shell: Any, path: Segments) -> bool:
    try:
        await shell.lstat(path)
    except FTPError:
        return False
    return True


class Removal:
    """A file about to go (DELE, or the file a rename replaces): ``done()`` once it has
    gone gives its bytes back to the home's quota count."""

    def __init__(self, home: HomeUsage | None = None, size: int | None = None) -> None:
        self._home = home
        self._size = size

    def done(self) -> None:
        if self._home is not None and self._size is not None:
            self._home.changed(self._size, None)


async def removal(ctx: CommandContext, path: Segments, unless: Segments | None = None) -> Removal:
    """What removing the entry ``path`` frees in a counted home (nothing when ``path``
    is ``unless``: a rename onto itself)."""
    shell = ctx.shell
    if path == unless or not IUsageShell.providedBy(shell):
        return Removal()
    home = ctx.server.quotas.tracked(shell.usage_key)
    if home is None:
        return Removal()
    await home.current(shell.disk_usage)
    return Removal(home, await _size(shell, path, follow=False))
