# -*- test-case-name: tests.test_control_lines -*-
"""Framing of the control stream: bytes to parsed commands.

Lines end in CRLF or a bare LF (``protocol.parser`` strips the CR and Telnet IAC
sequences). An over-long line is answered once (500) and skipped up to its end,
and reading carries on with whatever followed it, which Twisted's LineReceiver
alone does not do.
"""

from __future__ import annotations

import socket

from twisted.protocols.basic import LineReceiver

from twisted_ftpd.protocol.parser import MAX_LINE_LENGTH, Command, parse


class CommandLineReceiver(LineReceiver):
    """Subclasses provide ``command_received(command)`` and ``line_too_long()``."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_LENGTH
    gone = False  # the connection ended: feed no more lines
    _after_long_line = b""
    _discarding_long_line = False

    def command_received(self, command: Command) -> None:
        """One complete command line, parsed (a blank line is an empty command)."""

    def line_too_long(self) -> None:
        """A line longer than MAX_LENGTH began; it is being skipped."""

    def lineReceived(self, line: bytes) -> None:
        if self.gone:  # closed by an earlier line of the same read (QUIT)
            return
        if self._discarding_long_line:  # the tail of a line refused as too long
            self._discarding_long_line = False
            return
        # A blank line is answered like any unknown command (500), in order.
        self.command_received(parse(line) or Command("", ""))

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        # LineReceiver stops at an over-long line; carry on with what followed it.
        while self._after_long_line and not self.gone:
            rest, self._after_long_line = self._after_long_line, b""
            super().dataReceived(rest)

    def lineLengthExceeded(self, line: bytes) -> None:
        if not self._discarding_long_line:
            self.line_too_long()
        _, newline, rest = line.partition(self.delimiter)
        self._discarding_long_line = not newline
        self._after_long_line = rest

    def discard_input(self) -> None:
        """Drop everything received but not yet run (AUTH: nothing sent in clear runs)."""
        self.clearLineBuffer()
        self._after_long_line = b""

    def set_reading(self, reading: bool) -> None:
        """Read lines, or leave them in the socket (flow control on a long queue)."""
        (LineReceiver.resumeProducing if reading else LineReceiver.pauseProducing)(self)


def urgent_data_inline(transport: object) -> None:
    """Keep TCP urgent data in the stream: clients send ABOR's Telnet Synch (and
    ftplib the whole ABOR line) as urgent data, which the kernel would otherwise
    set aside, mangling the command (vsftpd does the same)."""
    handle = getattr(transport, "getHandle", lambda: None)()
    if isinstance(handle, socket.socket):
        try:
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        except OSError:
            pass
