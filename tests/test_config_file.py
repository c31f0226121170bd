"""``--config FILE``: every option from TOML, the command line winning, one-line errors
naming the key, and the shipped example."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from twisted.logger import capturedLogs, formatEvent
from twisted.python import usage

from tests.helpers import REPO, SERVER_PY
from twisted_ftpd import config_file
from twisted_ftpd.config import Options, ServerConfig

EXAMPLE = REPO / "twisted_ftpd" / "deploy" / "twisted-ftpd.toml"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "ftpd.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def file_error(tmp_path: Path, text: str) -> tuple[str, str]:
    """A config file holding ``text``, and the one-line error ``--config`` gives for it."""
    path = write(tmp_path, text)
    return path, error("--config", path)


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def error(*argv: str) -> str:
    with pytest.raises(usage.UsageError) as caught:
        parse(*argv)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_every_kind_of_value(tmp_path: Path) -> None:
    path = write(tmp_path, """
port = 2121
interface = "127.0.0.1"
root = "/srv/ftp"
banner = "Hello\\nthere"
passive-ports = "50000-50010"
idle-timeout = 60
data-timeout = 2.5
shutdown-grace = 0
no-tls-session-reuse = true
""")
    config = parse("--config", path).to_config()
    assert (config.port, config.interface, config.root) == (2121, "127.0.0.1", "/srv/ftp")
    assert config.banner == "Hello\nthere"
    assert config.passive_ports == (50000, 50010)
    assert (config.idle_timeout, config.data_timeout, config.shutdown_grace) == (60, 2.5, 0)
    assert config.tls_require_reuse is False


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    assert parse("--config", write(tmp_path, "# nothing\n")).to_config() == ServerConfig()


def test_the_command_line_wins_wherever_it_is(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = 2121\nroot = "/from/file"\n')
    for argv in (["--port", "21", "--config", path], ["--config", path, "-p", "21"],
                 [f"--config={path}", "--port=21"]):
        config = parse(*argv).to_config()
        assert (config.port, config.root) == (21, "/from/file"), argv


def test_the_file_read_is_logged_with_its_absolute_path(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "port = 2121\n")
    monkeypatch.chdir(tmp_path)
    with capturedLogs() as events:
        parse("--config", "ftpd.toml")
    assert [formatEvent(e) for e in events] == [
        f"Options from config file {tmp_path / 'ftpd.toml'}"]


def test_false_flag_is_the_default(tmp_path: Path) -> None:
    config = parse("--config", write(tmp_path, "no-tls-session-reuse = false\n")).to_config()
    assert config.tls_require_reuse is True


def test_a_list_gives_a_repeatable_option_each_value(tmp_path: Path) -> None:
    class Repeatable(Options):
        def __init__(self) -> None:
            super().__init__()
            self["seen"] = []

        def opt_tag(self, value: str) -> None:
            """A repeatable option, as --listen is."""
            self["seen"].append(value)

    path = write(tmp_path, 'tag = ["a", "b"]\n')
    options = Repeatable()
    options.parseOptions(["--config", path])
    assert options["seen"] == ["a", "b"]
    options = Repeatable()
    options.parseOptions(["--config", path, "--tag", "c"])
    assert options["seen"] == ["c"]  # replaced by the command line, not extended


def test_listen_takes_a_list_of_endpoints(tmp_path: Path) -> None:
    path = write(tmp_path, 'listen = ["tcp:2121:interface=127.0.0.1", "tcp6:2121"]\n')
    assert parse("--config", path).to_config().listen == ("tcp:2121:interface=127.0.0.1",
                                                         "tcp6:2121")
    config = parse("--config", path, "--listen", "tcp:21").to_config()
    assert config.listen == ("tcp:21",)
    assert "listen = 'nope:1': " in error("--config", write(tmp_path, 'listen = ["nope:1"]\n'))


@pytest.mark.parametrize(("text", "expected"), [
    ('passive_ports = "50000-50100"', "unknown key 'passive_ports' (write it as passive-ports"),
    ("passive-port = 1", "unknown key 'passive-port' (did you mean passive-ports?)"),
    ("p = 21", "unknown key 'p'"),
    ('config = "other.toml"', "unknown key 'config'"),
    ("help = true", "unknown key 'help'"),
    ("[server]\nport = 21", "unknown key 'server'"),
    ('port = "http"', "port = 'http': invalid literal"),
    ("port = 70000", "port = '70000': port 70000 is outside 0-65535"),
    ('passive-ports = "80-90"', "passive-ports = '80-90': passive ports must satisfy"),
    ("port = true", "port: expected a string or a number, not True"),
    ("port = [21, 2121]", "port: takes one value, not a list"),
    ("tls-required = 1", "tls-required: expected true or false, not 1"),
    ('tls-required = "yes"', "tls-required: expected true or false, not 'yes'"),
    ("idle-timeout = 1979-05-27", "idle-timeout: expected a string or a number"),
])
def test_bad_keys_and_values_are_one_line_naming_the_key(
        tmp_path: Path, text: str, expected: str) -> None:
    path, message = file_error(tmp_path, text + "\n")
    assert message.startswith(f"config file {path}: ")
    assert expected in message


@pytest.mark.parametrize(("text", "expected"), [
    ("shutdown-grace = -1", "--shutdown-grace must be"),
    ("idle-timeout = 0", "--idle-timeout must be positive"),
    ('tls-key = "key.pem"', "--tls-key needs --tls-cert"),
])
def test_checks_across_options_say_the_file_set_it(
        tmp_path: Path, text: str, expected: str) -> None:
    key = text.split()[0]
    path, message = file_error(tmp_path, text + "\n")
    assert expected in message and message.endswith(f"({key} set in config file {path})")


def test_a_check_about_a_command_line_option_does_not_blame_the_file(tmp_path: Path) -> None:
    message = error("--config", write(tmp_path, "port = 2121\n"), "--idle-timeout", "0")
    assert message == "--idle-timeout must be positive"


def test_not_toml_names_the_file_and_the_place(tmp_path: Path) -> None:
    path, message = file_error(tmp_path, "port = 21\nroot = \n")
    assert message.startswith(f"config file {path}: not valid TOML: ")
    assert "line 2" in message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    assert error("--config", str(tmp_path / "nope.toml")) == (
        f"config file {tmp_path / 'nope.toml'}: No such file or directory")
    assert "Is a directory" in error("--config", str(tmp_path))
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'banner = "caf\xe9"\n')
    assert error("--config", str(bad)).startswith(f"config file {bad}: not valid")


def test_every_option_is_a_key_except_the_ones_that_act_at_once() -> None:
    keys = config_file.settable(Options())
    expected = {name.rstrip("=") for name in Options().longOpt} - {"config", "help", "version"}
    assert set(keys) == expected
    assert keys["port"] is True and keys["tls-required"] is False


def test_options_added_later_are_keys_too(tmp_path: Path) -> None:
    class Extended(Options):
        optParameters = [["max-things", None, 5, "A new option.", int]]
        optFlags = [["be-nice", None, "Another."]]

    options = Extended()
    options.parseOptions(["--config", write(tmp_path, "max-things = 7\nbe-nice = true\n")])
    assert (options["max-things"], options["be-nice"]) == (7, 1)


# -- the shipped example ---------------------------------------------------------------


def _commented_assignments() -> list[str]:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    return [line[2:].split("  #")[0].strip() for line in lines
            if re.match(r"# [a-z][a-z-]+ = ", line)]


def test_the_example_loads_as_shipped() -> None:
    config = parse("--config", str(EXAMPLE)).to_config()
    assert config.root == "/srv/ftp" and config.passive_ports == (50000, 50100)


def test_every_commented_setting_in_the_example_is_valid(tmp_path: Path) -> None:
    settings = _commented_assignments()
    assert len(settings) >= 10
    for setting in settings:
        key = setting.split()[0]
        table = config_file.tokens(Options(), "example", {key: _toml_value(setting)})
        config_file._check_value(Options(), "example", key, table[key])


def _toml_value(setting: str) -> object:
    import tomllib

    return next(iter(tomllib.loads(setting).values()))


def test_every_setting_in_the_example_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in re.findall(r"^#? ?([a-z][a-z-]+) = ", text, re.M):
        assert f"| `--{key}" in readme, key


@pytest.mark.integration
def test_server_py_reports_a_bad_key_in_one_line_with_status_2(tmp_path: Path) -> None:
    path = write(tmp_path, "prot = 21\n")
    result = subprocess.run([*SERVER_PY, "--config", path],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "unknown key 'prot'" in result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("launcher", ["server.py", "twistd"])
def test_a_launcher_serves_with_the_options_of_the_file(tmp_path: Path, launcher: str) -> None:
    import ftplib

    from tests.harness import write_users
    from tests.helpers import TWISTD
    from tests.integration.tls_helpers import free_port, start_process, stop_process

    write_users(tmp_path / "users.db", {"alice": ("secret", "elr")}, None)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "hello.txt").write_bytes(b"hello\n")
    port = free_port()
    path = write(tmp_path, f"""
port = {port}
interface = "127.0.0.1"
root = "{tmp_path / 'files'}"
users = "{tmp_path / 'users.db'}"
banner = "from the file"
""")
    if launcher == "server.py":
        command = [*SERVER_PY, "--config", path]
    else:
        command = [*TWISTD, "-n",
                   "--pidfile=", "--logfile=-", "ftpd", "--config", path]
    proc = start_process(command, tmp_path)
    try:
        with ftplib.FTP() as ftp:
            ftp.connect("127.0.0.1", port, timeout=30)
            assert ftp.getwelcome() == "220 from the file"
            ftp.login("alice", "secret")
            assert ftp.nlst() == ["hello.txt"]
            ftp.quit()
    finally:
        stop_process(proc)
