"""Listings from a shell that lists in pages: each page is asked for only once the one
before it went out, so a huge directory never sits whole in memory."""

from __future__ import annotations

from collections.abc import Iterator

from twisted.internet import defer, error
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from twisted_ftpd.control.listings import Pages, send_pages
from twisted_ftpd.data.streams import LINE_BATCH
from twisted_ftpd.protocol.values import FileInfo

FILE = 0o100644


def entry(name: str) -> FileInfo:
    return FileInfo(name=name, mode=FILE, size=1, mtime=0.0)


class PagedShell:
    """list_page answers only when the test says so; ``asked`` records the tokens."""

    def __init__(self) -> None:
        self.asked: list[object] = []
        self.answers: list[defer.Deferred] = []

    def list_page(self, path: tuple[str, ...], token: object) -> defer.Deferred:
        self.asked.append(token)
        d: defer.Deferred = defer.Deferred()
        self.answers.append(d)
        return d


class FakeData(StringTransport):
    """The parts of a DataProtocol that send_pages uses, over a StringTransport."""

    aborted = False

    def __init__(self) -> None:
        super().__init__()
        self.transport = self
        self.closed: defer.Deferred = defer.Deferred()

    def loseConnection(self) -> None:  # noqa: N802 - Twisted interface name
        super().loseConnection()
        self.closed.callback(error.ConnectionDone())

    def hang_up(self) -> None:
        self.loseConnection()

    def when_closed(self) -> defer.Deferred:
        return self.closed


def names(page: list[FileInfo], first: bool) -> Iterator[str]:
    return iter(([">first"] if first else []) + [info.name for info in page])


class PagesTests(SynchronousTestCase):
    def test_each_page_is_asked_for_after_the_last_went_out(self) -> None:
        shell = PagedShell()
        pages = Pages(shell, ("d",))
        first_d = defer.ensureDeferred(pages.first())
        self.assertEqual(shell.asked, [None])
        shell.answers[0].callback(([entry("a"), entry("b")], "t1"))
        first = self.successResultOf(first_d)
        proto = FakeData()
        sent = defer.ensureDeferred(send_pages(proto, pages, first, names))
        self.assertEqual(proto.value(), b">first\r\na\r\nb\r\n")
        self.assertEqual(shell.asked, [None, "t1"])  # the next page, only now
        shell.answers[1].callback(([entry("c")], "t2"))
        self.assertEqual(shell.asked, [None, "t1", "t2"])
        self.assertNoResult(sent)
        shell.answers[2].callback(([entry("d")], None))
        self.successResultOf(sent)
        self.assertEqual(proto.value(), b">first\r\na\r\nb\r\nc\r\nd\r\n")
        self.assertTrue(proto.disconnecting)

    def test_a_paused_connection_holds_back_the_next_page(self) -> None:
        shell = PagedShell()
        pages = Pages(shell, ("d",))
        first_d = defer.ensureDeferred(pages.first())
        big = [entry(f"{n:06d}" + "x" * 100) for n in range(2 * LINE_BATCH // 100)]
        shell.answers[0].callback((big, "t1"))  # more than one batch of lines
        proto = FakeData()
        original_write = proto.write

        def write_and_pause(data: bytes) -> None:
            original_write(data)
            proto.producer.pauseProducing()  # the socket buffer is full

        proto.write = write_and_pause  # type: ignore[method-assign]
        sent = defer.ensureDeferred(send_pages(proto, pages, self.successResultOf(first_d),
                                               names))
        self.assertEqual(shell.asked, [None])  # page one is still being sent
        proto.write = original_write  # type: ignore[method-assign]
        proto.producer.resumeProducing()
        self.assertEqual(proto.value().count(b"\r\n"), len(big) + 1)
        self.assertEqual(shell.asked, [None, "t1"])
        shell.answers[1].callback(([], None))
        self.successResultOf(sent)

    def test_a_shell_without_pages_lists_once(self) -> None:
        class Whole:
            def list_dir(self, path: tuple[str, ...]) -> defer.Deferred:
                return defer.succeed([entry("x")])

        pages = Pages(Whole(), ())
        self.assertEqual(self.successResultOf(defer.ensureDeferred(pages.first())),
                         [entry("x")])
        proto = FakeData()
        self.successResultOf(defer.ensureDeferred(send_pages(proto, pages, [entry("x")],
                                                             names)))
        self.assertEqual(proto.value(), b">first\r\nx\r\n")

    def test_given_entries_need_no_shell(self) -> None:
        pages = Pages(None, ("f",), [entry("f")])
        self.assertEqual(self.successResultOf(defer.ensureDeferred(pages.first())),
                         [entry("f")])
