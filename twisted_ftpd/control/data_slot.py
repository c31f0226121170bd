# -*- test-case-name: tests.test_control_data_slot -*-
"""A session's one data connection, from PORT/PASV to the end of its transfer.

One explicit state machine says where the session's data connection is, which
is what decides whether ABOR, NOOP and STAT may run beside a command::

    IDLE --PORT/PASV--> PENDING --transfer command--> CLAIMED --150 sent--> AWAITING
      ^                    |                             |                     |
      +---- drop/ABOR -----+                             +------ connected ----+--> TRANSFERRING
      +------------------------------ end of the transfer --------------------------+

This is the only state machine of the data connection. How the connection is
made (listen or dial, the peer check, the TLS handshake) is ``data.connect``'s
business, and a set-up there keeps no state of its own beyond its one outcome
(connected, or why not) and whether the slot has dropped it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

from twisted_ftpd.data.channel import DataProtocol
from twisted_ftpd.data.connect import PendingConnection
from twisted_ftpd.data.throttle import SessionRates
from twisted_ftpd.protocol.errors import DataConnectionError, ProtectionRequired, TransferAborted


class Slot(enum.Enum):
    IDLE = "idle"  # no data connection set up
    PENDING = "pending"  # PORT/PASV done, waiting for a transfer command
    CLAIMED = "claimed"  # a transfer command took it; its file is being opened
    AWAITING = "awaiting"  # 150 is out; waiting for the connection to open
    TRANSFERRING = "transferring"  # connected; bytes are moving


S = Slot
# Every move the slot may make; anything else is a bug, not a state to be in.
TRANSITIONS: frozenset[tuple[Slot, Slot]] = frozenset({
    (S.IDLE, S.PENDING), (S.PENDING, S.PENDING), (S.PENDING, S.IDLE), (S.IDLE, S.IDLE),
    (S.PENDING, S.CLAIMED),
    (S.CLAIMED, S.AWAITING), (S.AWAITING, S.CLAIMED),  # the connection did not come
    (S.CLAIMED, S.TRANSFERRING), (S.AWAITING, S.TRANSFERRING),
    (S.CLAIMED, S.IDLE), (S.AWAITING, S.IDLE), (S.TRANSFERRING, S.IDLE),
})


class IllegalMove(Exception):
    """The slot was asked to move where its state machine has no edge."""


class DataSlot:
    """``on_change`` is told whenever commands may now run beside the transfer, or
    the transfer ended; ``on_pending``/``on_connected`` observers see every set-up and
    connection (the test server's fault injection hooks in there)."""

    def __init__(self, clock: IReactorTime, stall_timeout: float | None,
                 on_change: Callable[[], None]) -> None:
        self._clock = clock
        self._stall_timeout = stall_timeout
        self._on_change = on_change
        self.state = Slot.IDLE
        self.pending: PendingConnection | None = None
        self.transfer: DataProtocol | None = None
        self.aborted = False  # ABOR broke the current transfer off (for its log event)
        self.rates: SessionRates | None = None  # the login's bandwidth limits
        self.on_pending: list[Callable[[PendingConnection], None]] = []
        self.on_connected: list[Callable[[DataProtocol], None]] = []

    @property
    def in_transfer(self) -> bool:
        """True from the moment a transfer command takes its data connection."""
        return self.state in (Slot.CLAIMED, Slot.AWAITING, Slot.TRANSFERRING)

    @property
    def transfer_running(self) -> bool:
        """The 150 is out: ABOR, NOOP and STAT may run beside the command."""
        return self.state in (Slot.AWAITING, Slot.TRANSFERRING)

    def set_pending(self, pending: PendingConnection | None) -> None:
        """Replace the set-up made by PORT/PASV; the old one is dropped."""
        if self.pending is not None:
            self.pending.close()
        self.pending = pending
        if pending is not None:
            for observer in self.on_pending:
                observer(pending)
        if not self.in_transfer:
            self._move(Slot.IDLE if pending is None else Slot.PENDING)

    def take(self, protected: bool, protection_required: bool) -> PendingConnection:
        """The set-up for this transfer (each transfer needs a fresh one).

        ``protected``: PROT P is in force; ``protection_required``: clear data is refused.
        """
        pending = self.pending
        try:
            if protection_required and not protected:
                raise ProtectionRequired()
            if pending is None:
                raise DataConnectionError("use PORT, EPRT, PASV or EPSV first.")
            if pending.failure is not None:
                raise pending.failure
            if (pending.tls is not None) != protected:
                raise DataConnectionError(
                    "PROT changed since PASV/PORT; set up the connection again.")
        except Exception:
            self.set_pending(None)  # used up either way
            raise
        self._move(Slot.CLAIMED)
        self.aborted = False
        return pending

    async def open(self, pending: PendingConnection) -> DataProtocol:
        """Wait for the claimed connection; from the 150 on, others may run beside."""
        waiting = pending.connection()
        if not waiting.called:
            self._move(Slot.AWAITING)
            self._on_change()
        try:
            proto = await waiting
        except Exception:
            pending.close()
            raise
        finally:
            if self.state is Slot.AWAITING:
                self._move(Slot.CLAIMED)
        self._move(Slot.TRANSFERRING)
        self.transfer = proto
        proto.watch(self._clock, self._stall_timeout)
        if self.rates is not None:
            self.rates.apply(proto)
        for observer in self.on_connected:
            observer(proto)
        self._on_change()
        return proto

    def abort(self) -> None:
        """ABOR: break the running transfer off; its command then answers 426."""
        self.aborted = self.in_transfer
        if self.in_transfer and self.pending is not None:
            self.pending.close(TransferAborted())
        if self.transfer is not None:
            self.transfer.close()

    def end_transfer(self) -> None:
        """The transfer command is done, however it ended."""
        was_transferring = self.transfer is not None
        if self.in_transfer:
            claimed, self.pending = self.pending, None
            if claimed is not None:
                claimed.close()
        if self.transfer is not None:
            self.transfer.close()
            self.transfer = None
        if self.in_transfer or was_transferring:
            self._move(Slot.IDLE)
            self._on_change()

    def _move(self, to: Slot) -> None:
        if (self.state, to) not in TRANSITIONS:
            raise IllegalMove(f"{self.state.value} -> {to.value}")
        self.state = to

    def close(self) -> None:
        """Drop everything: the session is ending or logging out."""
        if not self.in_transfer:
            self.set_pending(None)
        self.end_transfer()
