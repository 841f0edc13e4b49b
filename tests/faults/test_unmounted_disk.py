"""The backup disk is not mounted: every member fails with one line, nothing is written anywhere,
and no hold moves off the real archive's base (issue 19, item 3).

Real parts: a loop-mounted ext4 "USB disk" for file:// driven through the
real CLI, and a tmpfs mounted on the SFTP login's archive directory (whose bare
mount point that login can write) over both SSH clients.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.cli import Cli, base_env
from tests.support.services import Pool, SshServer, ensure_test_user
from tests.support.zfsdata import MEMBERS, SNAP, zfs_get
from tests.support.zfsdata import snapshot as take_snapshot
from zfs_offsite.archive.identity import MARKER_NAME, ArchiveRootError, require_root
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings, load_settings

pytestmark = pytest.mark.integration

S2 = "auto-20190807.0200-1w"


def marks(pool: Pool) -> dict[str, str]:
    """Every snapshot's hold count (zfs-fuse's `zfs holds` cannot list tags): what must not move."""
    listed = subprocess.run(
        ["zfs", "list", "-H", "-t", "snapshot", "-o", "name,userrefs", "-r", pool.name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("\t") for line in listed.splitlines())


def file_cli(tmp_path: Path, pool: Pool, root: Path, **settings: str) -> Cli:
    """The CLI as an admin runs it on `pool`, target `file://root`, a Prefect home of its own."""
    (tmp_path / "cwd").mkdir()
    env = {"ZFS_OFFSITE_SOURCE__POOL": pool.name, "ZFS_OFFSITE_TARGET__URL": f"file://{root}"}
    return Cli(base_env(tmp_path / "prefect") | env | settings, tmp_path / "cwd")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usb_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None], Callable[[], None]]]:
    """A real ext4 file system on a loop device, mounted at `<tmp>/idn-mnt/usb`."""
    image = tmp_path / "idn-usb.img"
    with image.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mount_point = tmp_path / "idn-mnt" / "usb"
    mount_point.mkdir(parents=True)

    def mount() -> None:
        subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)], check=True)

    def unmount() -> None:
        subprocess.run(["umount", str(mount_point)], check=True)

    mount()
    try:
        yield mount_point, mount, unmount
    finally:
        subprocess.run(["umount", str(mount_point)], check=False, capture_output=True)


def test_unmounted_usb_disk_fails_every_member_through_the_cli(
    source_pool: Pool,
    usb_disk: tuple[Path, Callable[[], None], Callable[[], None]],
    tmp_path: Path,
) -> None:
    mount_point, mount, unmount = usb_disk
    archive = mount_point / "archive"
    cli = file_cli(tmp_path, source_pool, archive)
    first = cli("backup")
    assert first.code == 0, first.output
    marker = json.loads((archive / MARKER_NAME).read_text())
    assert marker["how"] == "first backup" and marker["archive_id"]
    # Private by default: other local users read nothing of the archive.
    assert mode(archive) == 0o700 and mode(archive / MARKER_NAME) == 0o600
    for member in MEMBERS:
        assert mode(archive / member) == 0o700
        assert {mode(p) for p in (archive / member).iterdir()} == {0o600}

    for member in MEMBERS:
        take_snapshot(f"{source_pool.name}/elabfs-{member}", S2)
    unmount()
    held = marks(source_pool)
    assert all(held[f"{source_pool.name}/elabfs-{m}@{SNAP}"] == "1" for m in MEMBERS)

    failed = cli("backup")
    assert failed.code == 1, failed.output
    said = failed.err_lines[-1]  # one line: every member, and the one cause
    assert said.startswith("error: backup failed for 3 member(s): alice, bob, carol: ")
    assert f"archive root file://{archive} is missing but {source_pool.name}/elabfs-" in said
    assert "was backed up there before: is the disk mounted?" in said
    assert "Traceback" not in failed.output
    assert os.listdir(mount_point) == []  # nothing written on the root file system
    assert marks(source_pool) == held  # no hold moved off the real archive's base

    status = cli("status")
    assert status.code == 2, status.output
    assert "is missing: is the disk mounted?" in status.stderr

    mount()
    again = cli("backup")
    assert again.code == 0, again.output
    for member in MEMBERS:
        name = f"elabfs-{member}@{SNAP}.to.elabfs-{member}@{S2}.zst"
        assert (archive / member / name).is_file()


def test_plan_on_the_unmounted_disk_says_what_backup_would_not_fulls(
    source_pool: Pool,
    usb_disk: tuple[Path, Callable[[], None], Callable[[], None]],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """The disk's bare mount point is empty: plan fails each member with the backup's refusal
    (exit 1, as a backup would), never `full … no snapshot of it is in the archive`; the
    refusal names one dataset and counts the others, so it is true for every member's row."""
    mount_point, _, unmount = usb_disk
    settings = settings_for(source_pool, mount_point, local=True)
    for member in discover_members(settings):
        assert backup_member(settings, member).action is Action.FULL
    archive_id = json.loads((mount_point / MARKER_NAME).read_text())["archive_id"]
    unmount()
    cli = file_cli(tmp_path, source_pool, mount_point)
    done = cli("plan", "--json")
    assert done.code == 1, done.output
    plan = json.loads(done.stdout)
    assert plan["note"] is None  # no "(a first backup … makes an archive there)"
    rows = {row["member"]: (row["action"], row["reason"]) for row in plan["members"]}
    assert set(rows) == set(MEMBERS)
    prop = "zfs-offsite:archive-" + hashlib.sha256(f"file://{mount_point}".encode()).hexdigest()[:8]
    refusal = (
        f"archive root file://{mount_point} is empty but {source_pool.name}/elabfs-alice "
        f"({prop}={archive_id}), with 2 more datasets, was backed up there before: "
        "is the disk mounted?"
    )
    for action, reason in rows.values():
        assert action == "failed" and reason.startswith(refusal), reason
    table = cli("plan")
    assert table.code == 1, table.output
    assert "no snapshot of it is in the archive" not in table.output
    assert "makes an archive there" not in table.output
    assert "Traceback" not in table.output
    assert os.listdir(mount_point) == []  # plan wrote nothing


@pytest.fixture
def mounted_sftp_dir(sftp_dir: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """The SFTP login's archive directory with a tmpfs mounted on it; the bare mount point
    below is the login's too (it can write there when the disk is not mounted)."""
    user = ensure_test_user()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(sftp_dir)], check=True)
    os.chown(sftp_dir, user.pw_uid, user.pw_gid)

    def unmount() -> None:
        subprocess.run(["umount", str(sftp_dir)], check=True)

    try:
        yield sftp_dir, unmount
    finally:
        subprocess.run(["umount", "-l", str(sftp_dir)], check=False, capture_output=True)


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_sftp_server_whose_disk_is_not_mounted_gets_nothing(
    source_pool: Pool,
    mounted_sftp_dir: tuple[Path, Callable[[], None]],
    settings_for: Callable[..., Settings],
    sshd: SshServer,
    client: str,
) -> None:
    archive, unmount = mounted_sftp_dir
    settings = settings_for(source_pool, archive, client=client)
    for member in discover_members(settings):
        assert backup_member(settings, member).action is Action.FULL
    assert json.loads((archive / MARKER_NAME).read_text())["how"] == "first backup"
    # Private on SFTP too: created with these modes by the server, for both clients.
    assert mode(archive / MARKER_NAME) == 0o600
    for member in MEMBERS:
        assert mode(archive / member) == 0o700
        assert {mode(p) for p in (archive / member).iterdir()} == {0o600}

    for member in MEMBERS:
        take_snapshot(f"{source_pool.name}/elabfs-{member}", S2)
    unmount()
    held = marks(source_pool)
    for member in discover_members(settings):
        with pytest.raises(ArchiveRootError) as caught:
            backup_member(settings, member)
        said = str(caught.value)
        assert said.startswith(f"archive root {settings.target.parsed}".split("://")[0])
        assert "is empty but" in said and "is the disk mounted?" in said
        assert "\n" not in said
    assert os.listdir(archive) == []  # the bare mount point stays empty
    assert marks(source_pool) == held


def test_with_protect_base_off_the_archive_record_still_refuses_the_unmounted_disk(
    source_pool: Pool,
    usb_disk: tuple[Path, Callable[[], None], Callable[[], None]],
    tmp_path: Path,
) -> None:
    """No hold, no bookmark: the user property the first backup left on each member is the
    evidence that an archive was there (issue 19 item 3, for protect_base = "off")."""
    mount_point, mount, unmount = usb_disk
    archive = mount_point / "archive"
    cli = file_cli(tmp_path, source_pool, archive, ZFS_OFFSITE_PROTECT_BASE="off")
    first = cli("backup")
    assert first.code == 0, first.output
    archive_id = json.loads((archive / MARKER_NAME).read_text())["archive_id"]
    # As README documents it: `zfs-offsite:archive-` and 8 hex digits of sha256(target URL).
    prop = "zfs-offsite:archive-" + hashlib.sha256(f"file://{archive}".encode()).hexdigest()[:8]
    for member in MEMBERS:
        assert zfs_get(prop, f"{source_pool.name}/elabfs-{member}") == archive_id
    assert set(marks(source_pool).values()) == {"0"}  # protect_base off: no hold anywhere

    for member in MEMBERS:
        take_snapshot(f"{source_pool.name}/elabfs-{member}", S2)
    unmount()
    failed = cli("backup")
    assert failed.code == 1, failed.output
    said = failed.err_lines[-1]
    assert said.startswith("error: backup failed for 3 member(s): alice, bob, carol: ")
    assert f"archive root file://{archive} is missing but {source_pool.name}/elabfs-" in said
    assert (
        f"({prop}={archive_id}), with 2 more datasets, was backed up there before: "
        "is the disk mounted?"
    ) in said
    assert "Traceback" not in failed.output
    assert os.listdir(mount_point) == []  # no new fulls on the root file system

    mount()
    again = cli("backup")
    assert again.code == 0, again.output
    for member in MEMBERS:
        name = f"elabfs-{member}@{SNAP}.to.elabfs-{member}@{S2}.zst"
        assert (archive / member / name).is_file()


def test_a_root_below_the_sftp_login_directory_is_named_as_the_user_wrote_it(
    sftp_dir: Path, sshd: SshServer
) -> None:
    """`sftp://…/~/dir` is named with its `~/` in every message about the root: without it the
    URL pasted back into target.url would be an absolute path, another directory."""
    server = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}"
    for url, what in (
        (f"{server}/~/{sftp_dir.name}", "empty"),
        (f"{server}/~/{sftp_dir.name}/gone", "missing"),
        (f"{server}{sftp_dir}", "empty"),  # an absolute path stays one, with one slash
    ):
        target = {"url": url, "key_file": str(sshd.client_key), "timeout": 10}
        settings = load_settings(target=target | {"known_hosts": str(sshd.known_hosts)})
        with (
            closing(open_store(settings.target)) as store,
            pytest.raises(ArchiveRootError) as caught,
        ):
            require_root(store)
        assert str(caught.value).startswith(
            f"archive root {url} is {what}: is the disk mounted?"
        ), caught.value
    assert os.listdir(sftp_dir) == []
