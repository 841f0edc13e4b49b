"""The operations tier's harness: the multi-host setup of deployments/README.md, for real.

One `prefect server start` on a private PostgreSQL cluster; two simulated ZFS
hosts, `hosta` and `hostb`, each with a zfs-fuse pool of members, its own
settings file and environment file (as scripts/install.sh writes them), its own
~/.prefect (result records live per machine), deployed with
deployments/deploy.sh from the repo's prefect.yaml, and a real
`prefect worker start` process on its own work pool, started as the systemd
unit starts it, under the host's own host name (tests/support/as_host.py).
hostb reaches the backup server through a slow link (a throttling proxy), so
its streams last long enough to cancel or kill mid-way.

Everything is module-scoped (the tier is one module of ordered steps) and torn
down on failure too: workers killed, pools destroyed, server and PostgreSQL
stopped.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.operations import (
    SERVER_SETTINGS,
    SLOW_LINK,
    SimulatedHost,
    Webhook,
)
from tests.support.postgres import postgres_cluster
from tests.support.prefect_server import prefect_server
from tests.support.proxy import ThrottlingProxy
from tests.support.services import SshServer, create_pool, ensure_test_user
from tests.support.tier_plugin import require
from tests.support.zfsdata import MEMBERS, SNAP, create_member, snapshot, write_member_data

# Test-only settings: services and workers poll faster than in production.


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, zfs_fuse: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """`prefect server start` on a private PostgreSQL cluster; the env of its clients."""
    require(request.config, "postgresql")
    home = tmp_path_factory.mktemp("prefect-server")
    with postgres_cluster() as url:
        settings = {"PREFECT_API_DATABASE_CONNECTION_URL": url, **SERVER_SETTINGS}
        with prefect_server(home, startup_seconds=240, settings=settings) as env:
            yield env


def _archive() -> Path:
    user = ensure_test_user()
    path = Path(user.pw_dir) / f"archive-{secrets.token_hex(4)}"
    path.mkdir(parents=True)
    os.chown(path, user.pw_uid, user.pw_gid)
    return path


@pytest.fixture(scope="module")
def hosts(
    server: dict[str, str], sshd: SshServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, SimulatedHost]]:
    """hosta (direct link) and hostb (slow link), deployed, each with its worker running."""
    made: list[SimulatedHost] = []
    proxy = ThrottlingProxy(sshd.port, SLOW_LINK)
    try:
        for name, port in (("hosta", sshd.port), ("hostb", proxy.port)):
            directory = tmp_path_factory.mktemp(name)
            pool = create_pool(directory)
            host = SimulatedHost(name, pool, _archive(), directory, server["PREFECT_API_URL"])
            made.append(host)
            for seed, member in enumerate(MEMBERS):
                dataset = create_member(pool.name, member)
                write_member_data(pool.mountpoint / f"elabfs-{member}", seed + len(made) * 10)
                snapshot(dataset, SNAP)
            known_hosts = directory / "known_hosts"
            known_hosts.write_text(sshd.known_hosts_line(port))
            host.write_files(
                {
                    "url": f"sftp://{sshd.user}@127.0.0.1:{port}{host.archive}",
                    "key_file": str(sshd.client_key),
                    "known_hosts": str(known_hosts),
                    "timeout": 20,
                }
            )
        with ThreadPoolExecutor() as both:  # two hosts deploy at the same time
            list(both.map(SimulatedHost.deploy, made))
        for host in made:
            host.start_worker()
        yield {h.name: h for h in made}
    finally:
        for host in made:
            host.stop_worker()
        proxy.close()
        for host in made:
            host.pool.destroy()
            shutil.rmtree(host.archive, ignore_errors=True)


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()
