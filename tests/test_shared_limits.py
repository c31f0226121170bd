"""How a session waits for the shared state's word at its start (--shared-state), over
the in-memory control channel: the answers come from a stand-in whose Deferreds the
test fires, so every order of events can be played (Redis itself is in
tests/integration/test_shared_state.py)."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import Deferred

from tests.harness import PEER, Harness
from twisted_ftpd.shared_state import CONNECTIONS, Hold, Refused


class AnswerLater:
    """Takes ``acquire`` calls as Redis would, answering when the test says."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, int, Deferred]] = []
        self.released = 0

    def acquire(self, kind: str, field: str, limit: int = 0, ban_host: str | None = None,
                ) -> Deferred:
        d: Deferred = Deferred()
        self.asked.append((kind, field, limit, d))
        return d

    def hold(self) -> Hold:
        def release() -> None:
            self.released += 1

        return Hold(release)


def harness(tmp_path: Path) -> tuple[Harness, AnswerLater]:
    h = Harness(tmp_path, max_connections_per_ip=3)
    shared = AnswerLater()
    h.factory.limits.shared = shared
    return h, shared


def test_the_greeting_waits_for_the_shared_count_and_the_slot_is_given_back(
        tmp_path: Path) -> None:
    h, shared = harness(tmp_path)
    session = h.connect()
    assert session.greeting == []  # not yet: Redis has not answered
    assert [asked[:3] for asked in shared.asked] == [(CONNECTIONS, PEER, 3)]
    shared.asked[0][3].callback(shared.hold())
    assert session.take() == ["220 twisted-ftpd ready."]
    session.lose()
    assert shared.released == 1
    assert h.factory.limits.count(PEER) == 0


def test_a_client_gone_before_the_answer_gives_its_slot_back_at_once(tmp_path: Path) -> None:
    h, shared = harness(tmp_path)
    session = h.connect()
    session.lose()
    shared.asked[0][3].callback(shared.hold())
    assert shared.released == 1
    assert session.take() == []
    assert h.factory.limits.count(PEER) == 0
    assert h.leftover_timers() == []


def test_full_across_the_nodes_is_421_and_frees_the_local_count(tmp_path: Path) -> None:
    h, shared = harness(tmp_path)
    session = h.connect()
    shared.asked[0][3].callback(Refused("full", count=3))
    assert session.take() == ["421 Too many connections from your address; try again later."]
    assert h.factory.limits.count(PEER) == 0


def test_a_ban_from_another_node_is_421_and_kept_here(tmp_path: Path) -> None:
    h, shared = harness(tmp_path)
    session = h.connect()
    shared.asked[0][3].callback(Refused("banned", seconds=60.0))
    assert session.take() == ["421 Too many failed logins from your address; try again later."]
    assert h.factory.limits.bans.banned(PEER)  # here too, even if Redis goes away
    h.reactor.advance(60)
    assert not h.factory.limits.bans.banned(PEER)
