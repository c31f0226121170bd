# -*- test-case-name: tests.test_config -*-
"""Command-line options, shared by ``python server.py`` and ``twistd ftpd``, and the
frozen settings object every other part reads.

Options are checked here, once, so a bad value is a one-line usage error at
start-up rather than a traceback later.
"""

from __future__ import annotations

import ipaddress
import math
import os
import sys
from dataclasses import dataclass

from twisted import copyright
from twisted.python import usage

from twisted_ftpd import __version__, config_file, listen, privileges, proxy_protocol
from twisted_ftpd.auth.cache import DEFAULT_SIZE as DEFAULT_CACHE_SIZE
from twisted_ftpd.auth.cache import DEFAULT_TTL as DEFAULT_CACHE_TTL
from twisted_ftpd.fs.storage import DEFAULT_THREADS as DEFAULT_STORAGE_THREADS
from twisted_ftpd.fs.storage import StorageError, parse_storage_url
from twisted_ftpd.hooks import parse_concurrency, parse_timeout
from twisted_ftpd.logs import parse_log_format
from twisted_ftpd.metrics import parse_endpoint
from twisted_ftpd.quota import DEFAULT_RESCAN, parse_rescan
from twisted_ftpd.shared_state import DEFAULT_TTL, parse_ttl, parse_url
from twisted_ftpd.tls import TLSConfigError, TLSCredentials
from twisted_ftpd.units import at_least, parse_rate

DEFAULT_PORT = 52305
DEFAULT_BANNER = "twisted-ftpd ready."
DEFAULT_UMASK = 0o022
MAX_WORKERS = 64
DESCRIPTION = "twisted-ftpd: serve files over FTP and FTPS to the users in the user file."


@dataclass(frozen=True)
class ServerConfig:
    port: int = DEFAULT_PORT
    interface: str = ""  # "" listens on every interface, IPv6 and IPv4 where possible
    root: str = "./ftproot"
    users: str = "./users.db"
    banner: str = DEFAULT_BANNER
    passive_ports: tuple[int, int] | None = None
    masquerade_address: str | None = None
    idle_timeout: float = 300.0  # control connection without commands (vsftpd's default)
    data_timeout: float = 30.0  # waiting for a data connection to open
    stall_timeout: float = 300.0  # a data connection that moves no bytes
    login_delay: float = 1.0  # before answering a failed login
    # Each such wait is drawn from login_delay times 1 - spread to 1 + spread: clients
    # that fail together (a brute-force tool's parallel connections) come back spread
    # out instead of in one wave that holds up everyone else's logins.
    login_delay_spread: float = 0.25
    max_login_failures: int = 3  # then the connection is closed
    max_connections: int = 250  # control connections at once; 0: no limit
    max_connections_per_ip: int = 20  # from one client address; 0: no limit
    ban_after: int = 10  # failed logins from one address within ban_window; 0: never ban
    ban_window: float = 600.0
    ban_time: float = 600.0  # the first ban; each repeat doubles it
    tls_cert: str | None = None  # PEM certificate (may also hold the key): enables FTPS
    tls_key: str | None = None
    tls_required: bool = False  # refuse logins and transfers without TLS
    tls_require_reuse: bool = True  # data connections must resume the login's TLS session
    implicit_tls_port: int | None = None  # also listen for implicit FTPS here
    tls_handshake_timeout: float = 30.0
    shutdown_grace: float = 30.0  # on SIGTERM/SIGINT, running transfers may finish
    upload_check: str | None = None  # shell command that may veto a finished upload
    on_upload: str | None = None  # shell command run after an upload landed
    hook_concurrency: int = 4  # of each kind, at once
    hook_timeout: float = 60.0  # seconds, then the hook's process group is killed
    quota_rescan: float = DEFAULT_RESCAN  # seconds before a quota's usage is walked again
    max_download_rate: int = 0  # bytes/s per session; 0: no limit
    max_upload_rate: int = 0
    log_format: str = "text"  # or "json": one JSON object per line
    log_file: str | None = None  # server.py logs to stdout without it
    xferlog: str | None = None  # the standard xferlog of every transfer
    metrics: str | None = None  # endpoint serving Prometheus metrics
    listen: tuple[str, ...] = ()  # endpoint descriptions; () means port and interface
    implicit_tls_listen: tuple[str, ...] = ()  # () means implicit_tls_port
    user: str | None = None  # run as this user once the ports are bound
    group: str | None = None  # and this group (default: the user's primary group)
    umask: int = DEFAULT_UMASK  # for uploaded files and new directories
    # Object storage (fs/storage.py): None keeps every home on the local disk.
    storage: str | None = None  # s3://bucket/prefix, or any fsspec URL
    storage_endpoint: str | None = None  # S3-compatible servers; else AWS_ENDPOINT_URL
    storage_region: str | None = None
    storage_threads: int = DEFAULT_STORAGE_THREADS
    shared_state: str | None = None  # Redis URL: bans and limits shared by several nodes
    shared_state_ttl: float = DEFAULT_TTL  # seconds a crashed node's counts keep counting
    # Load balancers (proxy_protocol.py): whose PROXY headers are believed, how their
    # passive data connections prove whose they are, how long a header may take.
    proxy_from: tuple[str, ...] = ()
    proxy_data: str = "header"
    proxy_header_timeout: float = proxy_protocol.HEADER_TIMEOUT
    # Successful password checks are remembered (auth/cache.py); 0 for either: never.
    auth_cache_ttl: float = DEFAULT_CACHE_TTL  # seconds an entry lasts
    auth_cache_size: int = DEFAULT_CACHE_SIZE  # users remembered at most
    workers: int = 1  # processes sharing the listening sockets (workers.py)

    def passive_port_candidates(self) -> list[int]:
        if self.passive_ports is None:
            return [0]
        low, high = self.passive_ports
        return list(range(low, high + 1))


def parse_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0-65535")
    return port


def parse_port_range(text: str) -> tuple[int, int]:
    low_text, sep, high_text = text.partition("-")
    if not sep:
        raise ValueError(f"expected LOW-HIGH, got {text!r}")
    low, high = int(low_text), int(high_text)
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"passive ports must satisfy 1024 <= LOW <= HIGH <= 65535, got {text}")
    return low, high


parse_count = at_least(0)


def split_passive_ports(ports: tuple[int, int] | None,
                        workers: int) -> list[tuple[int, int] | None]:
    """Each worker's part of the passive range: consecutive, disjoint, sizes differing by
    at most one (worker 0 gets the lowest ports), so no two workers race for a port.
    Without a range every worker takes any free port, as a single server does."""
    if ports is None:
        return [None] * workers
    low, high = ports
    count = high - low + 1
    if count < workers:
        raise ValueError(f"--passive-ports {low}-{high} holds {count} port(s): "
                         f"--workers {workers} needs at least one each")
    parts, start = [], low
    for index in range(workers):
        size = count // workers + (1 if index < count % workers else 0)
        parts.append((start, start + size - 1))
        start += size
    return parts


def parse_workers(text: str) -> int:
    count = int(text)
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"expected 1 to {MAX_WORKERS} worker processes, got {count}")
    return count


def parse_ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address (PASV can only announce IPv4)") from None


def parse_umask(text: str) -> int:
    # A leading 0 as vsftpd asks for: "22" or a TOML integer would be ambiguous.
    if not text.startswith("0") or not text.removeprefix("0o").isdigit():
        raise ValueError(f"expected an octal umask with a leading 0 (e.g. 022), got {text!r}")
    value = int(text.removeprefix("0o"), 8)
    if value > 0o777:
        raise ValueError(f"umask {text} is more than 0777")
    return value


def parse_interface(text: str) -> str:
    if text == "":
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


class Options(usage.Options):
    longdesc = ("README.md describes the user file, the commands served and FTPS; "
                "'twisted-ftpd users --help' manages users, 'twisted-ftpd cert --help' "
                "makes a certificate.")

    optParameters = [
        ["port", "p", DEFAULT_PORT, "TCP port for the control connection.", parse_port],
        ["interface", "i", "", "Address to listen on (default: all, IPv6 and IPv4).",
         parse_interface],
        ["root", "r", "./ftproot", "Root directory for users without a home of their own "
         "(created if missing)."],
        ["users", "u", "./users.db", "The user file, or a PostgreSQL database "
         "(postgresql://USER@HOST/DB) holding the ftpd_users table."],
        ["banner", "b", DEFAULT_BANNER, "Greeting sent after '220 ' (\\n for more lines)."],
        ["passive-ports", None, None, "Passive port range LO-HI (default: any free port).",
         parse_port_range],
        ["masquerade-address", None, None, "IPv4 address announced by PASV (for NAT).",
         parse_ipv4],
        ["idle-timeout", None, 300.0, "Seconds a control connection may sit idle.", float],
        ["data-timeout", None, 30.0, "Seconds to wait for a data connection to open.", float],
        ["max-connections", None, 250, "Most control connections at once; more get 421 "
         "(0: no limit).", parse_count],
        ["max-connections-per-ip", None, 20, "Most control connections from one client "
         "address (0: no limit).", parse_count],
        ["ban-after", None, 10, "Ban a client address after this many failed logins within "
         "--ban-window (0: never).", parse_count],
        ["ban-window", None, 600.0, "Seconds over which failed logins are counted.", float],
        ["ban-time", None, 600.0, "Seconds a first ban lasts; each repeat doubles it.", float],
        ["tls-cert", None, None, "PEM certificate (the key may be in the same file): "
         "enables AUTH TLS (explicit FTPS)."],
        ["tls-key", None, None, "PEM private key, when not in the --tls-cert file."],
        ["config", None, None, "TOML file with any of these options, spelled as here "
         "without the dashes in front; the command line wins."],
        ["shutdown-grace", None, 30.0, "Seconds running transfers may take to finish when "
         "the server is told to stop.", float],
        ["implicit-tls-port", None, None, "Also serve implicit FTPS (TLS from the first byte) "
         "on this port.", parse_port],
        ["max-download-rate", None, 0, "Bytes/s each session may download (K, M, G: 1024s; "
         "0: no limit).", parse_rate],
        ["max-upload-rate", None, 0, "Bytes/s each session may upload (0: no limit).",
         parse_rate],
        ["upload-check", None, None, "Shell command run on each finished upload before it "
         "lands (the file is $1); a non-zero exit rejects it with 550."],
        ["on-upload", None, None, "Shell command run after each upload landed (the file is "
         "$1)."],
        ["hook-concurrency", None, 4, "Most --upload-check (and, apart, --on-upload) "
         "commands running at once.", parse_concurrency],
        ["hook-timeout", None, 60.0, "Seconds an --upload-check or --on-upload command may "
         "run before it is killed (a killed check rejects the upload).", parse_timeout],
        ["quota-rescan", None, DEFAULT_RESCAN, "Seconds after which a quota's disk usage is "
         "measured again, to see changes made outside the server (0: never).", parse_rescan],
        ["log-format", None, "text", "Log lines as text, or as one JSON object each (json).",
         parse_log_format],
        ["log-file", None, None, "Append the log to this file instead of stdout (twistd: "
         "instead of its --logfile)."],
        ["xferlog", None, None, "Append a standard xferlog line (as vsftpd and ProFTPD write) "
         "for every upload and download to this file."],
        ["metrics", None, None, "Serve Prometheus metrics on this endpoint "
         "(tcp:9102:interface=127.0.0.1).", parse_endpoint],
        ["user", None, None, "Once the ports are bound, run as this user (name or uid) and "
         "its groups; needs root."],
        ["group", None, None, "With --user: run as this group (default: the user's own)."],
        ["umask", None, None, "Octal mask (leading 0) for the modes of uploaded files and new "
         "directories (default: 022).", parse_umask],
        # Object storage (README "Object storage").
        ["storage", None, None, "Serve the homes from this store instead of the disk: "
         "s3://BUCKET/PREFIX or another fsspec URL (credentials: the AWS variables or "
         "profile)."],
        ["storage-endpoint", None, None, "URL of an S3-compatible server (default: "
         "AWS_ENDPOINT_URL, else AWS)."],
        ["storage-region", None, None, "Region of the S3 bucket (default: AWS_REGION or the "
         "profile's)."],
        ["storage-threads", None, DEFAULT_STORAGE_THREADS, "Most store requests at once "
         "(the storage thread pool).", parse_concurrency],
        ["shared-state", None, None, "Redis URL (redis://HOST:PORT/DB): bans, connections per "
         "address and sessions per user counted across every node using it.", parse_url],
        ["shared-state-ttl", None, DEFAULT_TTL, "Seconds after which the counts of a node that "
         "stopped without a goodbye (a crash) no longer count.", parse_ttl],
        ["proxy-data", None, "header", "How passive data connections from the balancers show "
         "whose they are: a PROXY header (header), or none, only TLS resuming the login's "
         "session (tls).", proxy_protocol.parse_data_mode],
        ["auth-cache-ttl", None, DEFAULT_CACHE_TTL, "Seconds a successful password check is "
         "remembered, so the same user and password log in again without scrypt (0: never).",
         parse_rescan],
        ["auth-cache-size", None, DEFAULT_CACHE_SIZE, "Most users whose successful password "
         "check is remembered (0: none).", parse_count],
        ["workers", None, 1, "Serve from this many processes sharing the listening ports, "
         "one per core (1: a single process).", parse_workers],
    ]

    optFlags = [
        ["tls-required", None, "Refuse logins and transfers that are not protected by TLS."],
        ["no-tls-session-reuse", None, "Accept TLS data connections that do not resume the "
         "login's TLS session (for clients that cannot resume; weaker)."],
    ]

    def getSynopsis(self) -> str:
        """``Usage: server.py [options]`` (under twistd, Twisted's own usage line), then
        what the program does."""
        if self.parent is None:
            line = f"Usage: {os.path.basename(sys.argv[0])} [options]"
        else:
            line = super().getSynopsis()  # "Usage: twistd [options] ftpd [options]"
        return f"{line}\n{DESCRIPTION}"

    def __init__(self) -> None:
        super().__init__()
        self["listen"], self["implicit-tls-listen"] = [], []
        self["proxy-from"] = []
        self.longOpt = list(dict.fromkeys(self.longOpt))

    def opt_listen(self, description: str) -> None:
        """Twisted endpoint to serve FTP on, repeatable (tcp:21:interface=\\:\\:,
        systemd:domain=INET6:index=0); replaces --port and --interface."""
        self["listen"].append(_checked("listen", description))

    def opt_implicit_tls_listen(self, description: str) -> None:
        """Twisted endpoint to serve implicit FTPS on, repeatable; replaces
        --implicit-tls-port."""
        self["implicit-tls-listen"].append(_checked("implicit-tls-listen", description))

    def opt_proxy_from(self, network: str) -> None:
        """A load balancer's address or network (CIDR), repeatable: the only PROXY senders."""
        try:
            self["proxy-from"].append(proxy_protocol.parse_network(network))
        except ValueError as e:
            raise usage.UsageError(f"--proxy-from: {e}") from None

    def opt_version(self) -> None:
        """Display the twisted-ftpd and Twisted versions and exit."""
        print(f"twisted-ftpd {__version__} (Twisted {copyright.version})")
        raise SystemExit(0)

    def parseOptions(self, options: list[str] | None = None) -> None:
        """The ``--config`` file's options first (``config_file.py``), then the command line."""
        argv = sys.argv[1:] if options is None else list(options)
        config_file.parse(self, argv, super().parseOptions)

    def postOptions(self) -> None:
        for name in ("idle-timeout", "data-timeout"):
            if self[name] <= 0:
                raise usage.UsageError(f"--{name} must be positive")
        for name in ("ban-window", "ban-time"):
            if not 0 < self[name] < float("inf"):
                raise usage.UsageError(f"--{name} must be a positive number of seconds")
        if not 0 <= self["shutdown-grace"] < math.inf:
            raise usage.UsageError("--shutdown-grace must be a number of seconds, 0 or more")
        self["banner"] = self["banner"].replace("\\n", "\n")
        if self["workers"] > 1:
            self._check_workers()
        if self["storage"] is not None:
            try:
                parse_storage_url(self["storage"])
            except StorageError as e:
                raise usage.UsageError(f"--storage {e}") from None
        try:
            listen.check_options(self)
            privileges.check_options(self)
            proxy_protocol.check_options(self)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if self["tls-cert"] is None:
            for name in ("tls-key", "implicit-tls-port"):
                if self[name] is not None:
                    raise usage.UsageError(f"--{name} needs --tls-cert")
            if self["tls-required"]:
                raise usage.UsageError("--tls-required needs --tls-cert")
        else:
            try:  # fail at start-up, in one line, rather than at the first AUTH
                TLSCredentials.load(self["tls-cert"], self["tls-key"])
            except TLSConfigError as e:
                raise usage.UsageError(str(e)) from None

    def _check_workers(self) -> None:
        if self["metrics"] is not None:
            raise usage.UsageError("--metrics is not served with --workers: each worker "
                                   "counts only its own sessions")
        try:
            split_passive_ports(self["passive-ports"], self["workers"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    def to_config(self) -> ServerConfig:
        return ServerConfig(
            port=self["port"],
            interface=self["interface"],
            root=self["root"],
            users=self["users"],
            banner=self["banner"],
            passive_ports=self["passive-ports"],
            masquerade_address=self["masquerade-address"],
            idle_timeout=self["idle-timeout"],
            data_timeout=self["data-timeout"],
            max_connections=self["max-connections"],
            max_connections_per_ip=self["max-connections-per-ip"],
            ban_after=self["ban-after"],
            ban_window=self["ban-window"],
            ban_time=self["ban-time"],
            tls_cert=self["tls-cert"],
            tls_key=self["tls-key"],
            tls_required=bool(self["tls-required"]),
            tls_require_reuse=not self["no-tls-session-reuse"],
            implicit_tls_port=self["implicit-tls-port"],
            shutdown_grace=self["shutdown-grace"],
            upload_check=self["upload-check"],
            on_upload=self["on-upload"],
            hook_concurrency=self["hook-concurrency"],
            hook_timeout=self["hook-timeout"],
            quota_rescan=self["quota-rescan"],
            max_download_rate=self["max-download-rate"],
            max_upload_rate=self["max-upload-rate"],
            log_format=self["log-format"],
            log_file=self["log-file"],
            xferlog=self["xferlog"],
            metrics=self["metrics"],
            listen=tuple(self["listen"]),
            implicit_tls_listen=tuple(self["implicit-tls-listen"]),
            user=self["user"],
            group=self["group"],
            umask=DEFAULT_UMASK if self["umask"] is None else self["umask"],
            storage=self["storage"],
            storage_endpoint=self["storage-endpoint"],
            storage_region=self["storage-region"],
            storage_threads=self["storage-threads"],
            shared_state=self["shared-state"],
            shared_state_ttl=self["shared-state-ttl"],
            proxy_from=tuple(self["proxy-from"]),
            proxy_data=self["proxy-data"],
            auth_cache_ttl=self["auth-cache-ttl"],
            auth_cache_size=self["auth-cache-size"],
            workers=self["workers"],
        )


def _checked(name: str, description: str) -> str:
    try:
        return listen.check_description(description)
    except listen.ListenError as e:
        raise usage.UsageError(f"--{name} {e}") from None
