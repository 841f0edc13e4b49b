"""SSH failures say which thing is wrong, in the same words for both clients.

Every case runs against the real private sshd over the OpenSSH client and
over paramiko; passphrase-protected keys (made with ssh-keygen) log in, back
up and restore over both, and pull mode runs zfs with one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.services import Pool, SshServer, free_port, start_sshd, wait_for_port
from tests.support.zfsdata import SNAP, guid, tree_digest
from zfs_offsite.connect import open_store, target_endpoint
from zfs_offsite.errors import (
    ConfigError,
    HostKeyError,
    PermanentError,
    TransientError,
    ZfsOffsiteError,
)
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.restore import restore_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.remote.sftp import SftpStore
from zfs_offsite.settings import Settings, load_settings
from zfs_offsite.zfs.runner import LocalRunner

pytestmark = pytest.mark.integration

CLIENTS = ["openssh", "paramiko"]
PASSPHRASE = "correct horse battery staple"


def keygen(path: Path, passphrase: str = "", kind: tuple[str, ...] = ("-t", "ed25519")) -> Path:
    # The passphrase goes to ssh-keygen's argv here only because this is a test key.
    subprocess.run(
        ["ssh-keygen", "-q", *kind, "-N", passphrase, "-f", str(path)],
        check=True,
    )
    return path


@pytest.fixture
def authorize(sshd: SshServer) -> Iterator[Callable[[Path], None]]:
    """Add public keys to the sshd's authorized_keys; the file is restored afterwards."""
    authorized = sshd.directory / "authorized_keys"
    original = authorized.read_text()

    def add(key: Path) -> None:
        with authorized.open("a") as handle:
            handle.write(key.with_suffix(".pub").read_text())

    yield add
    authorized.write_text(original)


@pytest.fixture
def passphrase_key(tmp_path: Path, authorize: Callable[[Path], None]) -> Path:
    key = keygen(tmp_path / "protected_ed25519", PASSPHRASE)
    authorize(key)
    return key


def target_settings(sshd: SshServer, client: str, archive: str = "/tmp", **target: object):
    values: dict[str, object] = {
        "url": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{archive}",
        "key_file": str(sshd.client_key),
        "known_hosts": str(sshd.known_hosts),
        "timeout": 10,
        "client": client,
    }
    return load_settings(target=values | target)


def connect_error(settings: Settings) -> ZfsOffsiteError:
    """The error opening the store raises; the store must not open."""
    with pytest.raises(ZfsOffsiteError) as caught:
        open_store(settings.target).close()
    error = caught.value
    text = str(error)
    assert "\n" not in text  # one line
    for leak in ("OpenSSH_", "debug1", "OpenSSL", "Traceback", PASSPHRASE):
        assert leak not in text
    return error


def assert_error(
    settings: Settings, kind: type[ZfsOffsiteError], text: str, *, retryable: bool = False
) -> None:
    error = connect_error(settings)
    assert type(error) is kind
    assert str(error) == text
    assert error.retryable is retryable


# --- The key file ---------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_key_file(sshd: SshServer, tmp_path: Path, client: str) -> None:
    key = tmp_path / "no_such_key"
    assert_error(
        target_settings(sshd, client, key_file=str(key)),
        ConfigError,
        f"ssh key file {key} does not exist: fix target.key_file or create the key",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_key_file_that_is_a_directory(sshd: SshServer, tmp_path: Path, client: str) -> None:
    assert_error(
        target_settings(sshd, client, key_file=str(tmp_path)),
        ConfigError,
        f"ssh key file {tmp_path} is a directory, not a file: set target.key_file to the "
        "private key file",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_key_file_that_is_not_a_key(sshd: SshServer, tmp_path: Path, client: str) -> None:
    key = tmp_path / "notes.txt"
    key.write_text("this is not a key\n")
    key.chmod(0o600)
    assert_error(
        target_settings(sshd, client, key_file=str(key)),
        ConfigError,
        f"ssh key file {key} is not a private key: set target.key_file to the private key "
        "(OpenSSH or PEM format)",
    )
    public = tmp_path / "public"
    public.write_text(sshd.client_key.with_suffix(".pub").read_text())
    public.chmod(0o600)
    assert_error(
        target_settings(sshd, client, key_file=str(public)),
        ConfigError,
        f"ssh key file {public} is a public key: set target.key_file to the private key "
        "(OpenSSH or PEM format)",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_key_readable_by_others(sshd: SshServer, tmp_path: Path, client: str) -> None:
    key = tmp_path / "open_key"
    key.write_bytes(sshd.client_key.read_bytes())
    key.chmod(0o644)
    assert_error(
        target_settings(sshd, client, key_file=str(key)),
        ConfigError,
        f"ssh key file {key} is accessible by others (mode 0644), which OpenSSH refuses: "
        f"chmod 600 {key}",
    )
    # What the message says of OpenSSH is true: ssh itself ignores that key.
    ssh = ["ssh", "-F", "/dev/null", "-i", str(key), "-p", str(sshd.port), "-o", "BatchMode=yes"]
    login = [f"-oUserKnownHostsFile={sshd.known_hosts}", f"{sshd.user}@127.0.0.1", "-s", "sftp"]
    done = subprocess.run(
        [*ssh, *login], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    assert "bad permissions" in done.stderr


@pytest.mark.parametrize("client", CLIENTS)
def test_passphrase_key_without_passphrase(
    sshd: SshServer, passphrase_key: Path, client: str
) -> None:
    assert_error(
        target_settings(sshd, client, key_file=str(passphrase_key)),
        ConfigError,
        f"ssh key file {passphrase_key} is protected by a passphrase: set "
        "target.key_passphrase (environment variable ZFS_OFFSITE_TARGET__KEY_PASSPHRASE)",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_wrong_passphrase(sshd: SshServer, passphrase_key: Path, client: str) -> None:
    settings = target_settings(
        sshd, client, key_file=str(passphrase_key), key_passphrase="Correct horse battery staple"
    )
    assert_error(
        settings,
        ConfigError,
        f"ssh key file {passphrase_key} does not open with the passphrase in "
        "target.key_passphrase: the passphrase is wrong, fix the setting",
    )


# --- The server's answer ----------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_key_not_in_authorized_keys(sshd: SshServer, tmp_path: Path, client: str) -> None:
    stranger = keygen(tmp_path / "stranger_ed25519")
    assert_error(
        target_settings(sshd, client, key_file=str(stranger)),
        PermanentError,
        f"ssh key file {stranger} was refused by {sshd.user}@127.0.0.1:{sshd.port}: add its "
        f"public key to the authorized_keys of {sshd.user} on 127.0.0.1, or fix the user in "
        "target.url",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_unknown_host_key(sshd: SshServer, tmp_path: Path, client: str) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    assert_error(
        target_settings(sshd, client, known_hosts=str(known)),
        HostKeyError,
        f"host key of [127.0.0.1]:{sshd.port} is not in {known}: refusing to connect; add it "
        f"with `ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}` after checking it",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_changed_host_key(sshd: SshServer, tmp_path: Path, client: str) -> None:
    impostor = keygen(tmp_path / "impostor_host")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {impostor.with_suffix('.pub').read_text()}")
    listing = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(sshd.directory / "host_ed25519.pub")],
        capture_output=True,
        text=True,
        check=True,
    )
    fingerprint = listing.stdout.split()[1]
    assert_error(
        target_settings(sshd, client, known_hosts=str(known)),
        HostKeyError,
        f"host key of [127.0.0.1]:{sshd.port} differs from the one in {known} (offered "
        f"ssh-ed25519 {fingerprint}): refusing to connect; if the server was really "
        "re-keyed, replace its line in known_hosts",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_known_hosts(sshd: SshServer, tmp_path: Path, client: str) -> None:
    known = tmp_path / "known_hosts"
    assert_error(
        target_settings(sshd, client, known_hosts=str(known)),
        ConfigError,
        f"known_hosts file {known} does not exist: create it with "
        f"`ssh-keyscan -p {sshd.port} 127.0.0.1 > {known}` and check the key",
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_known_hosts_that_is_a_device_or_directory_says_so(
    sshd: SshServer, tmp_path: Path, client: str
) -> None:
    for known, kind in ((Path("/dev/null"), "a character device"), (tmp_path, "a directory")):
        assert_error(
            target_settings(sshd, client, known_hosts=str(known)),
            ConfigError,
            f"known_hosts file {known} is {kind}, not a file of host keys: set "
            f"target.known_hosts to a file and fill it with "
            f"`ssh-keyscan -p {sshd.port} 127.0.0.1 > {known}` and check the key",
        )


@pytest.fixture(scope="module")
def sshd_without_sftp() -> Iterator[SshServer]:
    """A second private sshd whose config has no `Subsystem sftp` line."""
    directory = Path(tempfile.mkdtemp(prefix="zfs-offsite-sshd-", dir="/var/tmp"))
    server = start_sshd(directory)
    server.stop()
    config = directory / "sshd_config"
    config.write_text(config.read_text().replace("Subsystem sftp internal-sftp\n", ""))
    server.process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL
    )
    wait_for_port(server.port)
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("client", CLIENTS)
def test_server_without_sftp(sshd_without_sftp: SshServer, client: str) -> None:
    assert_error(
        target_settings(sshd_without_sftp, client),
        PermanentError,
        f"ssh to 127.0.0.1:{sshd_without_sftp.port}: the server refused the SFTP subsystem: "
        "enable `Subsystem sftp internal-sftp` in its sshd_config",
    )


# --- Reaching the host ----------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_closed_port(sshd: SshServer, client: str) -> None:
    port = free_port()
    settings = load_settings(
        target={
            "url": f"sftp://{sshd.user}@127.0.0.1:{port}/tmp",
            "key_file": str(sshd.client_key),
            "known_hosts": str(sshd.known_hosts),
            "client": client,
        }
    )
    assert_error(
        settings,
        TransientError,
        f"cannot reach 127.0.0.1:{port}: Connection refused: check the host name, the port "
        "and that sshd runs there",
        retryable=True,
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_host_name_that_does_not_resolve(sshd: SshServer, client: str) -> None:
    try:
        socket.getaddrinfo("no-such-host.invalid", 22)
        pytest.fail("no-such-host.invalid resolves here")
    except socket.gaierror as exc:
        reason = exc.strerror
    settings = load_settings(
        target={
            "url": f"sftp://{sshd.user}@no-such-host.invalid/tmp",
            "key_file": str(sshd.client_key),
            "known_hosts": str(sshd.known_hosts),
            "client": client,
        }
    )
    assert_error(
        settings,
        TransientError,
        f"cannot reach no-such-host.invalid:22: host name no-such-host.invalid not resolved "
        f"({reason}): check the host name and DNS",
        retryable=True,
    )


class Listener:
    """A TCP port that is not sshd: it closes each connection or never says a word."""

    def __init__(self, close: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.close_each = close
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.close_each:
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("close", [True, False], ids=["closes", "silent"])
def test_port_that_is_not_sshd(sshd: SshServer, tmp_path: Path, client: str, close: bool) -> None:
    listener = Listener(close)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line(listener.port))
    settings = load_settings(
        target={
            "url": f"sftp://{sshd.user}@127.0.0.1:{listener.port}/tmp",
            "key_file": str(sshd.client_key),
            "known_hosts": str(known),
            "timeout": 2,
            "client": client,
        }
    )
    what = (
        "the server closed the connection before the SSH handshake"
        if close
        else "no SSH handshake within 2s"
    )
    with closing(listener):
        assert_error(
            settings,
            TransientError,
            f"ssh to 127.0.0.1:{listener.port} failed: {what}: check that the port is sshd's",
            retryable=True,
        )


# --- Passphrase keys work ---------------------------------------------------------------


def ssh_process_argv(store: SftpStore) -> str:
    assert store._channel is not None
    return Path(f"/proc/{store._channel._proc.pid}/cmdline").read_bytes().decode()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("kind", ["ed25519", "rsa-pem"])
def test_passphrase_key_logs_in(
    sshd: SshServer, tmp_path: Path, authorize: Callable[[Path], None], client: str, kind: str
) -> None:
    key = tmp_path / f"protected_{kind}"
    if kind == "ed25519":
        keygen(key, PASSPHRASE)
    else:
        keygen(key, PASSPHRASE, ("-t", "rsa", "-b", "2048", "-m", "PEM"))
        assert key.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    authorize(key)
    settings = target_settings(sshd, client, key_file=str(key), key_passphrase=PASSPHRASE)
    assert PASSPHRASE not in repr(settings) and PASSPHRASE not in repr(
        target_endpoint(settings.target)
    )
    with closing(open_store(settings.target)) as store:
        assert isinstance(store, SftpStore)
        assert (store._channel is not None) is (client == "openssh")
        if client == "openssh":
            assert PASSPHRASE not in ssh_process_argv(store)
        assert store.stat("/tmp") is not None


@pytest.mark.parametrize("client", CLIENTS)
def test_passphrase_set_for_a_plain_key_is_not_needed(sshd: SshServer, client: str) -> None:
    # OpenSSH never asks for it; paramiko must not fail on it either.
    settings = target_settings(sshd, client, key_passphrase=PASSPHRASE)
    with closing(open_store(settings.target)) as store:
        assert store.stat("/tmp") is not None


@pytest.mark.parametrize("client", CLIENTS)
def test_passphrase_key_backs_up_and_restores(
    source_pool: Pool,
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    sshd: SshServer,
    passphrase_key: Path,
    client: str,
) -> None:
    settings = load_settings(
        source={"pool": source_pool.name, "datasets": [f"{source_pool.name}/elabfs-alice"]},
        target={
            "url": f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{sftp_dir}",
            "key_file": str(passphrase_key),
            "key_passphrase": PASSPHRASE,
            "known_hosts": str(sshd.known_hosts),
            "timeout": 10,
            "client": client,
        },
    )
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.FULL
    assert (sftp_dir / "alice" / f"elabfs-alice@{SNAP}.zst").is_file()
    restore = pool_factory()
    destination = f"{restore.name}/alice"
    with closing(open_store(settings.target)) as store:
        restore_member(settings, LocalRunner(), store, "alice", destination)
    assert guid(f"{destination}@{SNAP}") == guid(f"{source_pool.name}/elabfs-alice@{SNAP}")
    assert tree_digest(restore.mountpoint / "alice") == tree_digest(
        source_pool.mountpoint / "elabfs-alice"
    )


def pull_settings(source_pool: Pool, archive: Path, sshd: SshServer, **source: object):
    return load_settings(
        source={
            "pool": source_pool.name,
            "datasets": [f"{source_pool.name}/elabfs-bob"],
            "ssh_url": f"ssh://root@127.0.0.1:{sshd.port}",
            "known_hosts": str(sshd.known_hosts),
        }
        | source,
        target={"url": f"file://{archive}"},
    )


def test_pull_mode_with_a_passphrase_key(
    source_pool: Pool, tmp_path: Path, sshd: SshServer, passphrase_key: Path
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    without = pull_settings(source_pool, archive, sshd, key_file=str(passphrase_key))
    with pytest.raises(ConfigError) as caught:
        discover_members(without)
    assert str(caught.value) == (
        f"ssh key file {passphrase_key} is protected by a passphrase: set "
        "source.key_passphrase (environment variable ZFS_OFFSITE_SOURCE__KEY_PASSPHRASE)"
    )
    stranger = keygen(tmp_path / "stranger_ed25519")
    with pytest.raises(PermanentError) as refused:
        discover_members(pull_settings(source_pool, archive, sshd, key_file=str(stranger)))
    assert str(refused.value) == (
        f"ssh key file {stranger} was refused by root@127.0.0.1:{sshd.port}: add its public "
        "key to the authorized_keys of root on 127.0.0.1, or fix the user in source.ssh_url"
    )
    settings = pull_settings(
        source_pool, archive, sshd, key_file=str(passphrase_key), key_passphrase=PASSPHRASE
    )
    (member,) = discover_members(settings)
    assert backup_member(settings, member).action is Action.FULL
    assert (archive / "bob" / f"elabfs-bob@{SNAP}.zst").is_file()


# --- Through the CLI ----------------------------------------------------------------------


def run_cli(*args: str, passphrase: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"COLUMNS": "400"}  # no wrapping: the error is checked as one line
    env.pop("ZFS_OFFSITE_TARGET__KEY_PASSPHRASE", None)
    if passphrase is not None:
        env["ZFS_OFFSITE_TARGET__KEY_PASSPHRASE"] = passphrase
    command = str(Path(sys.executable).parent / "zfs-offsite")
    return subprocess.run([command, *args], capture_output=True, text=True, env=env, check=False)


def write_config(path: Path, pool: Pool, url: str, key: Path, known: Path, client: str) -> Path:
    path.write_text(
        f'[source]\npool = "{pool.name}"\n'
        f'[target]\nurl = "{url}"\nkey_file = "{key}"\nknown_hosts = "{known}"\n'
        f'client = "{client}"\ntimeout = 5\n'
    )
    return path


@pytest.mark.parametrize("client", CLIENTS)
def test_cli_plan_with_a_passphrase_key(
    source_pool: Pool,
    sftp_dir: Path,
    tmp_path: Path,
    sshd: SshServer,
    passphrase_key: Path,
    client: str,
) -> None:
    url = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{sftp_dir}"
    config = write_config(
        tmp_path / "config.toml", source_pool, url, passphrase_key, sshd.known_hosts, client
    )
    failed = run_cli("plan", "-c", str(config))
    assert failed.returncode == 2
    output = failed.stdout + failed.stderr
    assert "Traceback" not in output
    assert (
        f"error: ssh key file {passphrase_key} is protected by a passphrase: set "
        "target.key_passphrase (environment variable ZFS_OFFSITE_TARGET__KEY_PASSPHRASE)\n"
    ) in output
    done = run_cli("plan", "-c", str(config), passphrase=PASSPHRASE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert PASSPHRASE not in done.stdout + done.stderr
    assert "full" in done.stdout


@pytest.mark.parametrize("client", CLIENTS)
def test_cli_plan_against_a_port_that_hangs_up(
    source_pool: Pool, tmp_path: Path, sshd: SshServer, client: str
) -> None:
    listener = Listener(close=True)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line(listener.port))
    url = f"sftp://{sshd.user}@127.0.0.1:{listener.port}/tmp"
    config = write_config(
        tmp_path / "config.toml", source_pool, url, sshd.client_key, known, client
    )
    with closing(listener):
        failed = run_cli("plan", "-c", str(config))
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1  # README's exit codes: the command ran and failed
    # paramiko's transport thread logs a traceback of its own; it must not reach the user.
    assert "Traceback" not in output and "paramiko" not in output
    assert (
        f"error: ssh to 127.0.0.1:{listener.port} failed: the server closed the connection "
        "before the SSH handshake: check that the port is sshd's\n"
    ) in output
