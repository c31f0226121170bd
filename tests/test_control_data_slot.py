"""The data slot's state machine, with stand-in connections."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from twisted_ftpd.control.data_slot import DataSlot, IllegalMove, Slot
from twisted_ftpd.protocol.errors import DataConnectionError, ProtectionRequired, TransferAborted


class Pending:
    """Stands in for data.connect.PendingConnection."""

    def __init__(self, tls: object = None) -> None:
        self.tls = tls
        self.failure: Exception | None = None
        self.closed: list[Exception | None] = []
        self.waiter: defer.Deferred = defer.Deferred()

    def connection(self) -> defer.Deferred:
        return self.waiter

    def close(self, reason: Exception | None = None) -> None:
        self.closed.append(reason)


class Proto:
    def __init__(self) -> None:
        self.watched: list[object] = []
        self.closed = 0

    def watch(self, clock: object, timeout: object) -> None:
        self.watched.append(timeout)

    def close(self) -> None:
        self.closed += 1


def make() -> tuple[DataSlot, list[Slot]]:
    changes: list[Slot] = []
    slot = DataSlot(Clock(), 300.0, lambda: changes.append(slot.state))
    return slot, changes


def test_a_whole_transfer_walks_the_states() -> None:
    slot, changes = make()
    pending, proto = Pending(), Proto()
    assert slot.state is Slot.IDLE
    slot.set_pending(pending)  # type: ignore[arg-type]
    assert slot.state is Slot.PENDING and not slot.in_transfer
    assert slot.take(protected=False, protection_required=False) is pending
    assert slot.state is Slot.CLAIMED and slot.in_transfer and not slot.transfer_running
    opened = defer.ensureDeferred(slot.open(pending))  # type: ignore[arg-type]
    assert slot.state is Slot.AWAITING and slot.transfer_running
    pending.waiter.callback(proto)
    assert opened.result is proto
    assert slot.state is Slot.TRANSFERRING and proto.watched == [300.0]
    slot.end_transfer()
    assert slot.state is Slot.IDLE and proto.closed == 1 and slot.transfer is None
    assert changes == [Slot.AWAITING, Slot.TRANSFERRING, Slot.IDLE]


def test_take_without_set_up_is_425() -> None:
    slot, _ = make()
    with pytest.raises(DataConnectionError):
        slot.take(protected=False, protection_required=False)
    assert slot.state is Slot.IDLE


def test_take_in_clear_when_protection_is_required_is_refused() -> None:
    slot, _ = make()
    pending = Pending()
    slot.set_pending(pending)  # type: ignore[arg-type]
    with pytest.raises(ProtectionRequired):
        slot.take(protected=False, protection_required=True)
    assert pending.closed == [None] and slot.state is Slot.IDLE


def test_take_after_prot_changed_is_refused() -> None:
    slot, _ = make()
    slot.set_pending(Pending(tls=None))  # type: ignore[arg-type]
    with pytest.raises(DataConnectionError):
        slot.take(protected=True, protection_required=False)


def test_a_new_set_up_replaces_and_closes_the_old_one() -> None:
    slot, _ = make()
    first, second = Pending(), Pending()
    seen: list[object] = []
    slot.on_pending.append(seen.append)
    slot.set_pending(first)  # type: ignore[arg-type]
    slot.set_pending(second)  # type: ignore[arg-type]
    assert first.closed == [None] and seen == [first, second]
    slot.set_pending(None)
    assert second.closed == [None] and slot.state is Slot.IDLE


def test_abort_while_waiting_closes_with_transfer_aborted() -> None:
    slot, _ = make()
    pending = Pending()
    slot.set_pending(pending)  # type: ignore[arg-type]
    slot.take(protected=False, protection_required=False)
    slot.abort()
    assert isinstance(pending.closed[0], TransferAborted)


def test_failed_open_goes_back_to_claimed_until_the_command_ends() -> None:
    slot, _ = make()
    pending = Pending()
    slot.set_pending(pending)  # type: ignore[arg-type]
    slot.take(protected=False, protection_required=False)
    opened = defer.ensureDeferred(slot.open(pending))  # type: ignore[arg-type]
    pending.waiter.errback(DataConnectionError("timed out."))
    opened.addErrback(lambda f: f.trap(DataConnectionError))
    assert slot.state is Slot.CLAIMED
    slot.end_transfer()
    assert slot.state is Slot.IDLE


def test_close_drops_a_pending_set_up_and_a_running_transfer() -> None:
    slot, _ = make()
    pending = Pending()
    slot.set_pending(pending)  # type: ignore[arg-type]
    slot.close()
    assert pending.closed == [None] and slot.state is Slot.IDLE


def test_moves_outside_the_state_machine_are_refused() -> None:
    slot, _ = make()
    pending = Pending()
    with pytest.raises(IllegalMove):
        slot._move(Slot.TRANSFERRING)  # nothing was set up, let alone claimed
    slot.set_pending(pending)  # type: ignore[arg-type]
    with pytest.raises(IllegalMove):
        slot._move(Slot.AWAITING)  # a 150 needs a transfer command first
    assert slot.state is Slot.PENDING


def test_every_failed_take_uses_the_set_up_up() -> None:
    slot, _ = make()
    failed = Pending()
    failed.failure = DataConnectionError("timed out.")
    slot.set_pending(failed)  # type: ignore[arg-type]
    with pytest.raises(DataConnectionError):
        slot.take(protected=False, protection_required=False)
    assert slot.state is Slot.IDLE and slot.pending is None
