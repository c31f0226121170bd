# -*- test-case-name: tests.test_protocol_parser -*-
"""Turn one raw control-channel line into a command verb and argument.

Lines arrive as bytes. Telnet IAC sequences are dropped (clients send
``IAC IP IAC DM`` before ABOR), the text is decoded as UTF-8 with undecodable
bytes kept as surrogates so nothing crashes and a path made of them can be
refused later, and the verb is upper-cased. The argument keeps inner spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

IAC = 255
# Telnet commands that take an option byte after them: WILL, WONT, DO, DONT.
_OPTION_COMMANDS = {251, 252, 253, 254}
MAX_LINE_LENGTH = 8192


@dataclass(frozen=True)
class Command:
    verb: str
    arg: str

    @property
    def arg_is_clean(self) -> bool:
        """False when the argument held bytes that are not UTF-8."""
        try:
            self.arg.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True


def strip_telnet(line: bytes) -> bytes:
    """Remove Telnet IAC sequences; ``IAC IAC`` stands for a literal 0xFF byte."""
    if IAC not in line:
        return line
    out = bytearray()
    i, n = 0, len(line)
    while i < n:
        byte = line[i]
        if byte != IAC:
            out.append(byte)
            i += 1
            continue
        following = line[i + 1] if i + 1 < n else None
        if following == IAC:
            out.append(IAC)
            i += 2
        elif following in _OPTION_COMMANDS:
            i += 3
        elif following is not None and following >= 240:  # a two-byte Telnet command
            i += 2
        else:
            # A lone IAC, e.g. the Synch sequence whose DM byte went out of band:
            # drop the IAC only, so the command after it survives intact.
            i += 1
    return bytes(out)


def parse(raw: bytes) -> Command | None:
    """The command in ``raw`` (one line without its LF), or None for a blank line."""
    line = strip_telnet(raw).rstrip(b"\r")
    text = line.decode("utf-8", "surrogateescape")
    text = text.lstrip(" ")
    if not text.strip():
        return None
    verb, _, arg = text.partition(" ")
    return Command(verb.upper(), arg)
