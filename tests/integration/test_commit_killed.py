"""A commit killed (SIGKILL) between its sidecar renames, and what `status` then says."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.support.archive_files import DS, member, sidecar
from zfs_offsite.archive.commit import commit_backup
from zfs_offsite.archive.index import read_member_archive
from zfs_offsite.jobs.status import member_status
from zfs_offsite.remote.local import LocalStore
from zfs_offsite.values.partials import checkpoint_name, partial_name

FILE = "elabfs-a@s1.zst"


class StoreKilledAtTheJsonRename(LocalStore):
    """The real local store; the process dies (kill -9) as the `.json` is moved into place."""

    def rename(self, source: str, destination: str) -> None:
        if destination.endswith(".json"):
            os.kill(os.getpid(), signal.SIGKILL)
        super().rename(source, destination)


def test_a_commit_killed_between_sidecar_renames_is_one_partial_upload(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    data = partial_name(f"a/{FILE}", "0123456789ab")
    (tmp_path / data).write_bytes(b"stream")
    (tmp_path / checkpoint_name(data)).write_bytes(b"checkpoints")
    pid = os.fork()
    if pid == 0:  # the backup run, killed mid-commit
        try:
            commit_backup(
                StoreKilledAtTheJsonRename(tmp_path),
                "a",
                FILE,
                data,
                sidecar(DS, "s1", 100, stored_bytes=6),
                checkpoints=checkpoint_name(data),
            )
        finally:
            os._exit(1)  # never reached: the kill comes first
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

    left = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert f"{FILE}.sha256" in left and FILE not in left  # the kill came between the renames
    assert [n for n in left if n.startswith(f"{FILE}.json.")] != []  # its .json still partial
    archive = read_member_archive(LocalStore(tmp_path), "a", "elabfs-a")
    assert len(archive.partials) == 3  # data, checkpoints, .json
    assert member_status(member("s1"), archive, now=0.0).partial_files == 1

    (tmp_path / data).unlink()  # the data partial gone too: its sidecar still counts, once
    (tmp_path / checkpoint_name(data)).unlink()
    archive = read_member_archive(LocalStore(tmp_path), "a", "elabfs-a")
    assert member_status(member("s1"), archive, now=0.0).partial_files == 1
