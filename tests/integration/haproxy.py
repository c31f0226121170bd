"""A real HAProxy (the Debian package) in front of twisted-ftpd nodes, for tests and for
``tests/multinode.py``: one control frontend balancing over the nodes, and for each
node a listen section forwarding its own passive range to the same ports on it.

Every frontend socket is bound and listening here, before HAProxy starts, and handed
to it as ``bind fd@N``: a client can connect the moment the process exists, with no
waiting for HAProxy to be ready, and port 0 picks free ports. ``config_text`` with
addresses instead of descriptors is the configuration the README shows.
"""

from __future__ import annotations

import random
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.conftest import require_binary

SAFETY_TIMEOUT = 30


@dataclass
class Node:
    """One twisted-ftpd node behind the balancer."""

    name: str
    host: str
    port: int  # its haproxy: control listener
    passive: tuple[int, int]  # its --passive-ports, forwarded one to one
    implicit_port: int | None = None  # its haproxy: implicit-FTPS listener, if any


def free_range(count: int, hosts: tuple[str, ...]) -> tuple[list[socket.socket], int, int]:
    """``count`` consecutive ports free on every one of ``hosts``, with listening sockets
    already holding them on the first (the balancer's), and the range."""
    for _ in range(200):
        low = random.randrange(20000, 60000 - count)
        held: list[socket.socket] = []
        try:
            for port in range(low, low + count):
                for host in hosts[1:]:  # the nodes' side: only free, they bind it later
                    with socket.socket() as probe:
                        probe.bind((host, port))
                held.append(listening(hosts[0], port))
            return held, low, low + count - 1
        except OSError:
            for sock in held:
                sock.close()
    raise AssertionError("no free port range")


def listening(host: str, port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock


def config_text(control: str, nodes: list[Node], data: dict[str, list[str]], send: str,
                data_send: str, implicit: str | None = None) -> str:
    """The HAProxy configuration: ``control`` (and ``implicit``) are the frontends'
    ``bind`` arguments, ``data[name]`` those of each node's passive frontend; ``send``
    is ``send-proxy`` (v1) or ``send-proxy-v2`` for control connections, ``data_send``
    the same for data connections ("" sends no header: ``--proxy-data tls``)."""
    lines = [
        "global",
        "    maxconn 1000",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 300s",
        "    timeout server 300s",
        "    retries 3",
        "    option redispatch  # a node that is down: the next connection tries another",
        "",
        "frontend ftp",
        f"    bind {control}",
        "    default_backend ftp_nodes",
        "backend ftp_nodes",
        "    balance roundrobin",
        *(f"    server {n.name} {n.host}:{n.port} {send}" for n in nodes),
    ]
    if implicit is not None:
        lines += ["", "frontend ftps", f"    bind {implicit}",
                  "    default_backend ftps_nodes", "backend ftps_nodes",
                  "    balance roundrobin",
                  *(f"    server {n.name} {n.host}:{n.implicit_port} {send}" for n in nodes)]
    for n in nodes:
        # No port on the server line: each connection goes to the port it came in on.
        lines += ["", f"listen passive_{n.name}", *(f"    bind {b}" for b in data[n.name]),
                  f"    server {n.name} {n.host} {data_send}".rstrip()]
    return "\n".join(lines) + "\n"


@dataclass
class Balancer:
    process: subprocess.Popen[str]
    host: str
    port: int  # the control frontend
    implicit_port: int | None
    config: str
    sockets: list[socket.socket] = field(default_factory=list)

    def stop(self) -> str:
        """Stop HAProxy (blocking); what it printed."""
        if self.process.poll() is None:
            self.process.terminate()
        output, _ = self.process.communicate(timeout=SAFETY_TIMEOUT)
        for sock in self.sockets:
            sock.close()
        return output


def start_haproxy(directory: Path, nodes: list[Node], passive: dict[str, list[socket.socket]],
                  host: str = "127.0.0.1", send: str = "send-proxy-v2",
                  data_send: str = "send-proxy-v2") -> Balancer:
    """HAProxy on ``host`` in front of ``nodes``; ``passive[name]`` are the sockets that
    hold node ``name``'s passive range on ``host`` (from ``free_range``)."""
    haproxy = require_binary("haproxy")
    control = listening(host)
    implicit = listening(host) if any(n.implicit_port for n in nodes) else None
    held = [control, *([implicit] if implicit else []), *(s for v in passive.values() for s in v)]
    text = config_text(f"fd@{control.fileno()}", nodes,
                       {name: [f"fd@{s.fileno()}" for s in socks]
                        for name, socks in passive.items()},
                       send, data_send, implicit and f"fd@{implicit.fileno()}")
    path = directory / "haproxy.cfg"
    path.write_text(text)
    process = subprocess.Popen([haproxy, "-f", str(path), "-db"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               pass_fds=tuple(s.fileno() for s in held))
    return Balancer(process, host, control.getsockname()[1],
                    implicit.getsockname()[1] if implicit else None, text, held)
