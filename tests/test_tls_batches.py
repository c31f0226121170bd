"""A data connection's TLS layer encrypts a large write in one SSL_write and passes the
records on in one transport write, over real OpenSSL connections (in memory)."""

from __future__ import annotations

import os

from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.test.iosim import FakeTransport, connect

from twisted_ftpd import tls
from twisted_ftpd.tls import TLSCredentials, write_in_large_batches


class Collect(Protocol):
    def __init__(self) -> None:
        self.received = bytearray()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted interface name
        self.received += data


def tls_pair(pem: str, clock: Clock | None = None
             ) -> tuple[TLSMemoryBIOProtocol, TLSMemoryBIOProtocol, object]:
    clock = clock or Clock()
    server_options = TLSCredentials.load(pem).context_factory()
    client_options = CertificateOptions()  # no verification: only the bytes matter here
    server_factory = TLSMemoryBIOFactory(server_options, False, Factory.forProtocol(Collect))
    server_factory._clock = clock  # small writes are gathered until the clock turns
    client_factory = TLSMemoryBIOFactory(client_options, True,
                                         ClientFactory.forProtocol(Collect))
    client_factory._clock = clock
    server = server_factory.buildProtocol(None)
    client = client_factory.buildProtocol(None)
    pump = connect(server, FakeTransport(server, isServer=True),
                   client, FakeTransport(client, isServer=False))
    assert server._handshakeDone and client._handshakeDone
    return server, client, pump


def spy_writes(layer: TLSMemoryBIOProtocol) -> list[int]:
    sizes: list[int] = []
    write = layer.transport.write

    def recorded(data: bytes) -> None:
        sizes.append(len(data))
        write(data)

    layer.transport.write = recorded
    return sizes


def test_a_large_write_goes_out_in_a_few_transport_writes(pem: str) -> None:
    server, client, pump = tls_pair(pem)
    write_in_large_batches(server)
    sizes = spy_writes(server)
    connection = server._tlsConnection
    encrypted: list[int] = []
    send = connection.send
    connection.send = lambda buf: encrypted.append(send(buf)) or encrypted[-1]
    data = os.urandom(2 * tls.TLS_WRITE + 12345)
    server.write(data)
    pump.flush()
    assert bytes(client.wrappedProtocol.received) == data
    # One SSL_write and one transport write per TLS_WRITE, not one per 16 KiB record.
    assert encrypted == [tls.TLS_WRITE, tls.TLS_WRITE, 12345]
    assert len(sizes) == 3
    assert all(size <= tls.TLS_READ_OUT for size in sizes)


def test_without_it_every_record_is_a_transport_write(pem: str) -> None:
    server, client, pump = tls_pair(pem)
    sizes = spy_writes(server)
    data = os.urandom(tls.TLS_WRITE)
    server.write(data)
    pump.flush()
    assert bytes(client.wrappedProtocol.received) == data
    assert len(sizes) == tls.TLS_WRITE // 2**14  # Twisted's own: a write per record


def test_batched_output_is_decrypted_both_ways_after_more_traffic(pem: str) -> None:
    clock = Clock()
    server, client, pump = tls_pair(pem, clock)
    write_in_large_batches(server)
    for size in (1, 2**14, 2**14 + 1, tls.TLS_READ_OUT + 7):
        data = os.urandom(size)
        server.write(data)
        clock.advance(0)
        pump.flush()
        assert bytes(client.wrappedProtocol.received[-size:]) == data
    client.write(b"and back")
    clock.advance(0)
    pump.flush()
    assert bytes(server.wrappedProtocol.received) == b"and back"
