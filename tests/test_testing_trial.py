"""``FTPServerMixin`` in ``twisted.trial.unittest.TestCase`` classes, run by trial itself.

Trial test cases are not collected by pytest here: asynchronous trial TestCases fail
under pytest once pytest-twisted has started its reactor (pytest-twisted issue #147).
So the trial module below is written to a temporary directory and run with
``python -m twisted.trial`` in a subprocess, as a user of the mixin would run it;
trial's own janitor then checks that nothing (connections, listeners, timers,
threads) is left behind after each test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAFETY_TIMEOUT = 120  # seconds; a safety net, never a wait

TRIAL_MODULE = r'''
import os

from twisted.internet import defer, error, reactor
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.protocols.ftp import (CommandFailed, ConnectionLost, FTPClient, FTPClientBasic,
                                    FTPFileListProtocol)
from twisted.trial import unittest

from twisted_ftpd.testing import FTPServerMixin


class Collector(Protocol):
    def __init__(self):
        self.chunks = []

    def dataReceived(self, data):
        self.chunks.append(data)

    @property
    def data(self):
        return b"".join(self.chunks)


class SaysWhenLost:
    """``.lost`` fires when the control connection is gone."""

    def connectionMade(self):
        self.lost = defer.Deferred()
        super().connectionMade()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.lost.callback(None)


class Client(SaysWhenLost, FTPClient):
    pass


class BasicClient(SaysWhenLost, FTPClientBasic):
    pass


@defer.inlineCallbacks
def connect(server, user="alice", password="secret", passive=1):
    creator = ClientCreator(reactor, Client, user, password, passive=passive)
    client = yield creator.connectTCP(server.host, server.port)
    return client


@defer.inlineCallbacks
def quit(client):
    yield client.quit()
    yield client.lost


@defer.inlineCallbacks
def retrieve(client, path):
    collector = Collector()
    yield client.retrieveFile(path, collector)
    return collector.data


@defer.inlineCallbacks
def store(client, path, data):
    consumer_d, done = client.storeFile(path)
    consumer = yield consumer_d
    consumer.write(data)
    consumer.finish()
    yield done


def next_line_handled(server):
    """Fires once the (only) session has read and handled the next complete line it gets."""
    handled = defer.Deferred()
    (session,) = server.sessions
    received = session.dataReceived

    def noting(data):
        received(data)
        if b"\n" in data:
            session.dataReceived = received
            handled.callback(None)

    session.dataReceived = noting
    return handled


@defer.inlineCallbacks
def refused(host, port):
    try:
        yield ClientCreator(reactor, Protocol).connectTCP(host, port)
    except error.ConnectionRefusedError:
        return True
    return False


class StartStopTests(FTPServerMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_start_and_stop(self):
        server = yield self.start_ftp_server()
        self.assertEqual(server.host, "127.0.0.1")
        self.assertEqual(server.url, "ftp://alice:secret@127.0.0.1:%d/" % server.port)
        root = server.root
        self.assertTrue(root.is_dir())
        client = yield connect(server)
        self.assertEqual(len(server.sessions), 1)
        yield quit(client)

        port = server.port
        yield server.stop()
        self.assertFalse(root.exists())
        self.assertTrue((yield refused("127.0.0.1", port)))
        yield server.stop()  # again, harmlessly (the mixin's cleanup does it too)

    @defer.inlineCallbacks
    def test_stopped_after_the_test(self):
        checks = []

        @defer.inlineCallbacks
        def check():  # added first, so it runs after the mixin's cleanup
            server, root, port, client = checks
            yield client.lost  # stop() ended the session the test left open
            self.assertEqual(server.sessions, set())
            self.assertFalse(root.exists())
            self.assertTrue((yield refused("127.0.0.1", port)))

        self.addCleanup(check)
        server = yield self.start_ftp_server()
        client = yield connect(server)
        yield client.pwd()
        checks.extend([server, server.root, server.port, client])

    @defer.inlineCallbacks
    def test_stop_closes_live_sessions(self):
        server = yield self.start_ftp_server()
        client = yield connect(server)
        yield client.pwd()
        self.assertEqual(len(server.sessions), 1)
        yield server.stop()
        yield client.lost  # the server hung up on it
        self.assertEqual(server.sessions, set())


class FileTests(FTPServerMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_put_file_and_read_file(self):
        server = yield self.start_ftp_server(users={"bob": "pw"})
        payload = os.urandom(500000)
        server.put_file("dir/in.bin", payload)
        client = yield connect(server, "bob", "pw")

        listing = FTPFileListProtocol()
        yield client.list("dir", listing)
        self.assertEqual([(f["filename"], f["size"]) for f in listing.files],
                         [("in.bin", 500000)])
        self.assertEqual((yield retrieve(client, "dir/in.bin")), payload)
        yield store(client, "dir/out.bin", payload[::-1])
        yield quit(client)

        self.assertEqual(server.read_file("dir/out.bin"), payload[::-1])

    @defer.inlineCallbacks
    def test_active_mode(self):
        server = yield self.start_ftp_server()
        server.put_file("a.txt", b"active")
        client = yield connect(server, passive=0)
        self.assertEqual((yield retrieve(client, "a.txt")), b"active")
        yield quit(client)

    @defer.inlineCallbacks
    def test_read_only_user(self):
        server = yield self.start_ftp_server(users={"ro": ("pw", "elr")})
        client = yield connect(server, "ro", "pw")
        try:
            yield store(client, "nope.txt", b"x")
        except CommandFailed as e:
            self.assertTrue(str(e).find("550") != -1, str(e))
        else:
            self.fail("a read-only user could upload")
        yield quit(client)
        self.assertFalse((server.root / "nope.txt").exists())

    @defer.inlineCallbacks
    def test_memory(self):
        server = yield self.start_ftp_server(memory=True)
        self.assertIsNone(server.root)
        server.put_file("m.txt", b"memory")
        client = yield connect(server)
        downloaded = yield retrieve(client, "m.txt")
        yield store(client, "n.txt", b"stored")
        yield quit(client)
        self.assertEqual(downloaded, b"memory")
        self.assertEqual(server.read_file("n.txt"), b"stored")

    @defer.inlineCallbacks
    def test_two_servers_in_one_test(self):
        first = yield self.start_ftp_server(users={"one": "1"})
        second = yield self.start_ftp_server(users={"two": "2"})
        self.assertNotEqual(first.port, second.port)
        self.assertNotEqual(first.root, second.root)
        first.put_file("who.txt", b"first")
        second.put_file("who.txt", b"second")

        clients = yield defer.gatherResults([connect(first, "one", "1"),
                                             connect(second, "two", "2")])
        collectors = [Collector(), Collector()]
        yield defer.gatherResults([c.retrieveFile("who.txt", col)
                                   for c, col in zip(clients, collectors)])
        self.assertEqual([c.data for c in collectors], [b"first", b"second"])
        yield defer.gatherResults([quit(c) for c in clients])


class FaultTests(FTPServerMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_reply_delay(self):
        server = yield self.start_ftp_server()
        server.faults.reply_delay = 0.01
        client = yield connect(server)
        pwd, syst = yield defer.gatherResults([client.pwd(),
                                               client.queueStringCommand("SYST")])
        self.assertTrue(pwd[-1].startswith('257 "/"'), pwd)
        self.assertTrue(syst[-1].startswith("215 "), syst)

        # The client leaves while a reply is held back: the session's end cancels it
        # (trial would report a pending DelayedCall otherwise).
        server.faults.reply_delay = 60
        handled = next_line_handled(server)
        held = client.queueStringCommand("NOOP")
        yield handled  # the server has read the NOOP and answered it
        self.assertTrue(any(50 < call.getTime() - reactor.seconds() <= 60  # not the idle timer
                            for call in reactor.getDelayedCalls()),
                        "the NOOP reply was never held back")
        client.transport.loseConnection()
        yield self.assertFailure(held, ConnectionLost)
        yield client.lost

    @defer.inlineCallbacks
    def test_refused_data_connection(self):
        server = yield self.start_ftp_server()
        server.put_file("f.txt", b"data")
        client = yield connect(server)
        server.faults.refuse_next_data_connection()
        try:
            yield client.retrieveFile("f.txt", Collector())
        except CommandFailed as e:
            self.assertIn("425", str(e))
        else:
            self.fail("the refused transfer succeeded")
        self.assertEqual((yield retrieve(client, "f.txt")), b"data")
        yield quit(client)


class TLSTests(FTPServerMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_tls_server_also_serves_plain_control(self):
        server = yield self.start_ftp_server(tls=True)
        self.assertTrue(os.path.isfile(server.cert))
        server.put_file("plain.txt", b"in clear")
        client = yield connect(server)
        feat = yield client.queueStringCommand("FEAT")
        self.assertIn(" AUTH TLS", feat)
        self.assertEqual((yield retrieve(client, "plain.txt")), b"in clear")
        yield quit(client)

    @defer.inlineCallbacks
    def test_tls_required_refuses_plain_logins(self):
        server = yield self.start_ftp_server(tls=True, tls_required=True)
        client = yield ClientCreator(reactor, BasicClient).connectTCP(server.host, server.port)
        try:
            yield client.queueStringCommand("USER alice")
        except CommandFailed as e:
            self.assertTrue(e.args[0][-1].startswith("534"), e.args)
        else:
            self.fail("USER was accepted in clear with tls_required")
        client.transport.loseConnection()
        yield client.lost
'''


def test_trial_test_cases_pass_cleanly(tmp_path: Path) -> None:
    (tmp_path / "trial_ftp_mixin.py").write_text(TRIAL_MODULE, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    result = subprocess.run([sys.executable, "-m", "twisted.trial", "trial_ftp_mixin"],
                            cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=SAFETY_TIMEOUT, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "DirtyReactorAggregateError" not in output, output
    assert "Unhandled error" not in output, output
    tests = len(re.findall(r"^    def test_", TRIAL_MODULE, re.M))
    assert re.search(rf"^PASSED \(successes={tests}\)$", output, re.M), output
    assert f"Ran {tests} tests" in output, output
