"""Shared fixtures: real zfs-fuse pools, a real sshd, settings that point at them.

Also the tiers (tests/support/tiers.py): plain `pytest` selects the fast tier and
keeps it off the host's own files (`hermetic_host`); a root tier's missing
service skips its tests with the reason, or fails them under --require-services.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.server_config import AUTH_KEY, ENV_FILE_ENV, URL_KEY
from flows.logs import send_core_logs
from tests.support.cli import stop_local_servers
from tests.support.services import (
    Pool,
    SshServer,
    create_pool,
    ensure_test_user,
    ensure_zfs_fuse,
    start_sshd,
)
from tests.support.tier_plugin import TierPlugin, add_tier_options, require
from tests.support.tiers import FAST
from tests.support.zfsdata import MEMBERS, populate_members
from zfs_offsite.settings import Settings, load_settings
from zfs_offsite.settings import files as settings_files

# Before any test imports Prefect (importing `flows` does it too): the core's lines in
# each run's logs, as in the CLI and on a worker.
send_core_logs()

# pytester: tests/unit/test_tiers.py runs pytest in-process; rgw_fixtures: tests/s3, tests/faults
pytest_plugins = ["pytester", "tests.support.rgw_fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_tier_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(TierPlugin(config, Path(__file__).resolve().parent), "tiers")


# The caller's variables a fast test must not see: settings, the host's names, a server.
PRIVATE_PREFIXES = ("OFFSITE_", "ZFS_OFFSITE_", "PREFECT_API_")


@pytest.fixture(scope="module", autouse=True)
def local_servers_stopped() -> Iterator[None]:
    """The local Prefect servers a module's CLI commands shared, stopped when it ends."""
    yield
    stop_local_servers()


@pytest.fixture(autouse=True)
def hermetic_host(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A fast test sees none of this host's own files or the caller's environment.

    No `/etc/zfs-offsite.toml` (the settings see it as missing) and no
    `/etc/default/zfs-offsite` (OFFSITE_ENV_FILE points at a file that does not
    exist), a private HOME (no `~/.ssh` of the caller or of the zfs-offsite user,
    whose home is /var/lib/zfs-offsite) and PREFECT_HOME (no Prefect profile naming
    a server), no PREFECT_API_URL, OFFSITE_* or ZFS_OFFSITE_* variable, and an
    empty working directory (no `./zfs-offsite.toml` or `.env`). The root tiers set
    up what they need themselves and are left as they are.
    """
    if request.node.get_closest_marker(FAST) is None:
        return
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(PRIVATE_PREFIXES) or name in (URL_KEY, AUTH_KEY, "PREFECT_PROFILE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PREFECT_HOME", str(home / ".prefect"))
    monkeypatch.setenv(ENV_FILE_ENV, str(home / "no-env-file"))
    # /etc/zfs-offsite.toml is looked up under an empty directory; messages keep its name.
    monkeypatch.setattr(settings_files, "system_root", tmp_path_factory.mktemp("system-root"))
    work = home / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture(scope="session")
def zfs_fuse(request: pytest.FixtureRequest) -> None:
    require(request.config, "root", "zfs-fuse")
    ensure_zfs_fuse()


@pytest.fixture(scope="session")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's one Prefect test server, with result storage in a temp dir.

    One for the whole session: Prefect's event and log workers are process-wide, and a
    second harness nested in the first leaves them posting to the wrong server.
    """
    from prefect.testing.utilities import prefect_test_harness

    results = tmp_path_factory.mktemp("prefect-results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(results))
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture(scope="session")
def sshd(request: pytest.FixtureRequest) -> Iterator[SshServer]:
    require(request.config, "root", "sshd")
    # Not under pytest's tmp dir: that is 0700 and sshd reads keys as the test user.
    directory = Path(tempfile.mkdtemp(prefix="zfs-offsite-sshd-", dir="/var/tmp"))
    server = start_sshd(directory)
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pool_factory(zfs_fuse: None, tmp_path: Path) -> Iterator[Callable[[], Pool]]:
    pools: list[Pool] = []

    def make() -> Pool:
        pool = create_pool(tmp_path)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.destroy()


@pytest.fixture
def source_pool(pool_factory: Callable[[], Pool]) -> Pool:
    """A pool with three members, each with real data and one snapshot."""
    pool = pool_factory()
    populate_members(pool.name, pool.mountpoint, MEMBERS)
    return pool


@pytest.fixture
def sftp_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """An archive directory owned by the SFTP test user."""
    require(request.config, "root")  # it creates that user
    user = ensure_test_user()
    path = Path(user.pw_dir) / f"archive-{secrets.token_hex(4)}"
    path.mkdir(parents=True)
    os.chown(path, user.pw_uid, user.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def settings_for(sshd: SshServer) -> Callable[..., Settings]:
    """Settings for a pool and an archive dir, over SFTP unless `local=True`."""

    def make(
        pool: Pool,
        archive: Path,
        *,
        local: bool = False,
        pull: bool = False,
        port: int | None = None,
        compression: str = "zstd",
        known_hosts: Path | None = None,
        client: str = "auto",
    ) -> Settings:
        target = (
            {"url": f"file://{archive}"}
            if local
            else {
                "url": f"sftp://{sshd.user}@127.0.0.1:{port or sshd.port}{archive}",
                "key_file": str(sshd.client_key),
                "known_hosts": str(known_hosts or sshd.known_hosts),
                "timeout": 10,
                "client": client,
            }
        )
        source: dict[str, object] = {"pool": pool.name}
        if pull:
            source |= {
                "ssh_url": f"ssh://root@127.0.0.1:{sshd.port}",
                "key_file": str(sshd.client_key),
                "known_hosts": str(sshd.known_hosts),
            }
        return load_settings(source=source, target=target, compression={"algorithm": compression})

    return make
