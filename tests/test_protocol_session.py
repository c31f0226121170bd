"""Unit tests for the login state machine and one-shot sub-states (protocol.session)."""

from __future__ import annotations

import itertools

import pytest

from twisted_ftpd.protocol.session import (
    TRANSITIONS,
    Event,
    IllegalTransition,
    Phase,
    Session,
)

ALL_PAIRS = list(itertools.product(Phase, Event))
LEGAL = sorted(TRANSITIONS.items(), key=lambda item: (item[0][0].value, item[0][1].value))
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in TRANSITIONS]


def _busy_session(phase: Phase) -> Session:
    return Session(
        phase=phase, user="bob", cwd=("a", "b"), type="I", rename_from=("old",),
        rest_offset=1234, epsv_all=True, failed_logins=2,
    )


def assert_logged_out(session: Session) -> None:
    """The login state a new session starts in, and REIN returns to."""
    assert session.phase is Phase.CONNECTED
    assert session.user == ""
    assert session.cwd == ()
    assert session.type == "A"
    assert session.rename_from is None
    assert session.rest_offset == 0
    assert not session.logged_in


def test_defaults() -> None:
    session = Session()
    assert_logged_out(session)
    assert session.epsv_all is False
    assert session.failed_logins == 0
    assert session.logged_in is False


def test_table_is_partial_and_complete_over_known_names() -> None:
    assert LEGAL and ILLEGAL
    assert len(LEGAL) + len(ILLEGAL) == len(Phase) * len(Event)
    for (phase, event), target in TRANSITIONS.items():
        assert isinstance(phase, Phase) and isinstance(event, Event) and isinstance(target, Phase)


@pytest.mark.parametrize(("pair", "target"), LEGAL, ids=lambda v: str(v))
def test_fire_follows_table(pair: tuple[Phase, Event], target: Phase) -> None:
    phase, event = pair
    session = Session(phase=phase)
    assert session.fire(event) is target
    assert session.phase is target
    assert session.logged_in is (target is Phase.LOGGED_IN)


@pytest.mark.parametrize(("phase", "event"), ILLEGAL, ids=lambda v: v.name)
def test_illegal_transition_raises_and_changes_nothing(phase: Phase, event: Event) -> None:
    session = _busy_session(phase)
    before = Session(**vars(session))
    with pytest.raises(IllegalTransition) as info:
        session.fire(event)
    assert session.phase is phase
    assert session == before
    assert event.value in str(info.value)
    assert phase.value in str(info.value)


@pytest.mark.parametrize(
    ("phase", "event"),
    [
        (Phase.CONNECTED, Event.PASS),
        (Phase.CONNECTED, Event.LOGIN_OK),
        (Phase.LOGGED_IN, Event.USER),
        (Phase.LOGGED_IN, Event.PASS),
        (Phase.USER_GIVEN, Event.LOGIN_OK),
    ],
)
def test_known_illegal_shortcuts(phase: Phase, event: Event) -> None:
    assert (phase, event) in ILLEGAL
    with pytest.raises(IllegalTransition):
        Session(phase=phase).fire(event)


def test_full_login_path() -> None:
    session = Session()
    assert session.fire(Event.USER) is Phase.USER_GIVEN
    assert session.fire(Event.PASS) is Phase.AUTHENTICATING
    assert not session.logged_in
    assert session.fire(Event.LOGIN_OK) is Phase.LOGGED_IN
    assert session.logged_in


def test_user_may_be_repeated_before_pass() -> None:
    session = Session()
    session.fire(Event.USER)
    assert session.fire(Event.USER) is Phase.USER_GIVEN


def test_failed_login_returns_to_connected_and_allows_retry() -> None:
    session = Session()
    session.fire(Event.USER)
    session.fire(Event.PASS)
    assert session.fire(Event.LOGIN_FAILED) is Phase.CONNECTED
    assert not session.logged_in
    assert session.fire(Event.USER) is Phase.USER_GIVEN
    session.fire(Event.PASS)
    assert session.fire(Event.LOGIN_OK) is Phase.LOGGED_IN


@pytest.mark.parametrize("phase", [p for p in Phase if (p, Event.REIN) in TRANSITIONS])
def test_rein_resets_login_state(phase: Phase) -> None:
    session = _busy_session(phase)
    assert session.fire(Event.REIN) is Phase.CONNECTED
    assert_logged_out(session)


def test_rein_after_login_then_login_again() -> None:
    session = Session()
    for event in (Event.USER, Event.PASS, Event.LOGIN_OK, Event.REIN, Event.USER, Event.PASS):
        session.fire(event)
    assert session.phase is Phase.AUTHENTICATING


def test_reset_clears_user_state() -> None:
    session = _busy_session(Phase.LOGGED_IN)
    session.reset()
    assert (session.user, session.cwd, session.type) == ("", (), "A")
    assert (session.rename_from, session.rest_offset) == (None, 0)
    # reset() forgets the user's data; it does not move the state machine.
    assert session.phase is Phase.LOGGED_IN


def test_non_rein_transition_keeps_fields() -> None:
    session = _busy_session(Phase.USER_GIVEN)
    session.fire(Event.PASS)
    assert (session.user, session.cwd, session.type) == ("bob", ("a", "b"), "I")
    assert (session.rename_from, session.rest_offset) == (("old",), 1234)


def test_take_rest_returns_and_clears() -> None:
    session = Session()
    session.rest_offset = 4096
    assert session.take_rest() == 4096
    assert session.rest_offset == 0
    assert session.take_rest() == 0
    assert session.rest_offset == 0


def test_take_rest_default_is_zero() -> None:
    assert Session().take_rest() == 0


def test_sessions_do_not_share_state() -> None:
    a, b = Session(), Session()
    a.fire(Event.USER)
    a.rest_offset = 5
    assert b.phase is Phase.CONNECTED
    assert b.rest_offset == 0
