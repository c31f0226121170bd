"""What a command handler may use: the one interface between handlers and the session.

Handlers get a ``CommandContext`` and nothing else; the control protocol is the
object behind it, but a handler never reaches past this list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from twisted_ftpd.config import ServerConfig
from twisted_ftpd.protocol.replies import Reply
from twisted_ftpd.protocol.session import Session
from twisted_ftpd.protocol.values import Segments

if TYPE_CHECKING:
    from .data_slot import DataSlot
    from .services import ServerServices
    from .tls_session import ControlTLS


class CommandContext(Protocol):
    session: Session  # login phase, directory, TYPE, REST, RNFR, PROT...
    shell: Any  # the logged-in user's IFTPShell, or None
    logout: Callable[[], None] | None
    config: ServerConfig
    clock: IReactorTime
    server: ServerServices  # what all sessions share: portal, limits, events, quotas...
    tls: ControlTLS
    data: DataSlot
    gone: bool  # the client has disconnected
    session_id: str  # this connection's id in the logs

    @property
    def permissions(self) -> str: ...

    @property
    def peer_host(self) -> str: ...

    @property
    def local_host(self) -> str: ...

    def reply(self, reply: Reply, immediate: bool = False) -> None:
        """Send a reply now (a 150 or 234 before the command's final one)."""

    def resolve(self, arg: str, creating: bool = False) -> Segments:
        """The path ``arg`` names from the current directory."""

    def start_tls(self) -> None:
        """AUTH: switch this connection to TLS after its 234."""

    def sleep(self, seconds: float) -> defer.Deferred[None]:
        """Wait; fails with CancelledError if the client leaves first."""

    def wait(self, waiting: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """``waiting``; cancelled (CancelledError) if the client leaves first."""

    def when_idle(self) -> defer.Deferred[None]:
        """Fires once the main command now running has finished."""

    def end_login(self) -> None:
        """Log the user out (REIN, QUIT, disconnect)."""

    def close_after(self, reply: Reply) -> None:
        """Send ``reply``, then close the connection; run nothing more."""
