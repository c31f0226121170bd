# -*- test-case-name: tests.test_protocol_session -*-
"""Per-connection session state: the login state machine and its pending sub-states.

The login phase moves only along ``TRANSITIONS``; an event with no entry there
is a programming error, not a silently ignored flag. RNFR and REST are one-shot
sub-states: RNFR is consumed (or dropped) by the very next command, REST by the
next transfer, as RFC 959 and RFC 3659 describe.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from twisted_ftpd.protocol.values import Segments


class Phase(enum.Enum):
    CONNECTED = "connected"  # greeted, nobody named yet
    USER_GIVEN = "user given"  # USER accepted, waiting for PASS
    AUTHENTICATING = "authenticating"  # PASS is being checked
    LOGGED_IN = "logged in"


class Event(enum.Enum):
    USER = "user"
    PASS = "pass"
    LOGIN_OK = "login ok"
    LOGIN_FAILED = "login failed"
    REIN = "rein"


P, E = Phase, Event
TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (P.CONNECTED, E.USER): P.USER_GIVEN,
    (P.USER_GIVEN, E.USER): P.USER_GIVEN,
    (P.USER_GIVEN, E.PASS): P.AUTHENTICATING,
    (P.AUTHENTICATING, E.LOGIN_OK): P.LOGGED_IN,
    (P.AUTHENTICATING, E.LOGIN_FAILED): P.CONNECTED,
    (P.CONNECTED, E.REIN): P.CONNECTED,
    (P.USER_GIVEN, E.REIN): P.CONNECTED,
    (P.LOGGED_IN, E.REIN): P.CONNECTED,
}


class IllegalTransition(Exception):
    """An event arrived in a phase where it has no meaning."""


@dataclass
class Session:
    """Everything one control connection remembers between commands."""

    phase: Phase = Phase.CONNECTED
    user: str = ""
    cwd: Segments = ()
    type: str = "A"  # TYPE: "A" or "I" (RFC 959 default A); MODE S and STRU F are fixed
    rename_from: Segments | None = None
    rest_offset: int = 0
    epsv_all: bool = False
    host: str = ""  # HOST (RFC 7151), before USER
    mlst_facts: tuple[str, ...] = ()  # MLSx facts chosen by OPTS MLST
    pbsz: bool = False  # PBSZ 0 received (RFC 4217), needed before PROT
    prot: str = "C"  # data channel protection: "C" clear or "P" private
    user_requires_tls: bool = False  # the named user's record demands TLS
    failed_logins: int = 0

    def fire(self, event: Event) -> Phase:
        """Move along the login state machine, or raise IllegalTransition."""
        try:
            new = TRANSITIONS[(self.phase, event)]
        except KeyError:
            raise IllegalTransition(f"{event.value} while {self.phase.value}") from None
        self.phase = new
        if event is Event.REIN:
            self.reset()
        return new

    @property
    def logged_in(self) -> bool:
        return self.phase is Phase.LOGGED_IN

    def reset(self) -> None:
        """Forget the user and everything tied to it (REIN, failed login)."""
        self.user = ""
        self.cwd = ()
        self.type = "A"
        self.rename_from = None
        self.rest_offset = 0
        self.user_requires_tls = False

    def command_starting(self, verb: str) -> None:
        """RNFR's name lasts exactly one command: the RNTO right after it (RFC 959)."""
        if verb != "RNTO":
            self.rename_from = None

    def take_rest(self) -> int:
        """The pending REST offset, consumed by the transfer that uses it."""
        offset, self.rest_offset = self.rest_offset, 0
        return offset
