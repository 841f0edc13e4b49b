"""Verify's rotation over a real archive: real zfs-fuse backups, read back over the real sshd.

Each run reads the new files plus its share of the older ones, the record on
the server says what was read when, every file is read again within
`cycle_runs` runs, and a byte flipped in a file the rotation deferred is
found within that cycle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import Pool
from tests.support.settings_edit import with_section
from tests.support.zfsdata import create_member, snapshot, write_member_data
from zfs_offsite.archive.verify_rotation import (
    ALL,
    MARKED,
    NEVER_READ,
    VERIFY_RECORD,
    read_verify_record,
)
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.verify import (
    DEFERRED,
    MemberVerification,
    RecordWriter,
    Verdict,
    verify_member,
)
from zfs_offsite.settings import Settings

pytestmark = pytest.mark.integration

CYCLE = 4


@dataclass
class Archive:
    pool: Pool
    dataset: str
    directory: Path  # the member's directory on the server
    settings: Settings
    snapshots: int = 0

    def backup(self) -> str:
        """One more snapshot, backed up: the new file's name."""
        self.snapshots += 1
        write_member_data(self.pool.mountpoint / "elabfs-eve", self.snapshots, 1)
        snapshot(self.dataset, f"auto-2026{self.snapshots:04d}")
        (member,) = discover_members(self.settings)
        result = backup_member(self.settings, member)
        assert result.remote_path
        return Path(result.remote_path).name

    def files(self) -> dict[str, int]:
        return {p.name: p.stat().st_size for p in self.directory.glob("*.zst")}

    def verify(self, *, read_all: bool = False) -> MemberVerification:
        """One verify run of the member, as the flow does it: record read, run, record written."""
        with closing(open_store(self.settings.target)) as store:
            record = read_verify_record(store).get("eve")
            cycle = with_section(self.settings, "verify", cycle_runs=CYCLE)
            result = verify_member(cycle, store, "eve", record=record, read_all=read_all)
            assert result.record is not None
        records = RecordWriter(self.settings)  # the job's writer: the record is stored
        records.add(result)
        records.finish()
        return result

    def record(self) -> dict[str, dict[str, object]]:
        raw = json.loads((self.directory.parent / VERIFY_RECORD).read_text())
        return raw["members"]["eve"]["files"]


def read_in_full(result: MemberVerification) -> dict[str, str]:
    return {f.filename: f.read for f in result.files if f.read != DEFERRED}


@pytest.fixture
def archive(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> Archive:
    pool = pool_factory()
    a = Archive(
        pool, create_member(pool.name, "eve"), sftp_dir / "eve", settings_for(pool, sftp_dir)
    )
    for _ in range(8):
        a.backup()
    assert len(a.files()) == 8  # a full and seven incrementals
    return a


def flip_byte_keeping_mtime(path: Path) -> None:
    """Bit rot: the bytes change, the size and modification time do not."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_each_run_reads_new_files_and_its_share_until_every_file_was_read(
    archive: Archive,
) -> None:
    first = archive.verify()
    assert set(read_in_full(first).values()) == {NEVER_READ} and len(first.files) == 8
    assert first.verdict is Verdict.OK
    assert {e["run"] for e in archive.record().values()} == {1}
    first_read = {f.filename: f.last_read for f in first.files}

    new = archive.backup()
    sizes = archive.files()
    old_bytes = sum(size for name, size in sizes.items() if name != new)
    second = archive.verify()
    read = read_in_full(second)
    assert read.pop(new) == NEVER_READ
    rotated = sum(sizes[n] for n in read)
    assert old_bytes / CYCLE <= rotated < old_bytes / CYCLE + max(sizes.values())
    deferred = [f for f in second.files if f.read == DEFERRED]
    assert len(read) + len(deferred) == 8 and deferred
    # The member's row counts what was read, never one deferred file's note.
    assert second.detail == (
        f"{len(read) + 1} file(s) read in full this run, "
        f"{len(deferred)} deferred to a later run (rotation)"
    )
    for f in deferred:  # the report says when each deferred file was last read in full
        assert f.last_read == first_read[f.filename] and f.verdict is Verdict.OK
        assert first_read[f.filename] in f.detail
    record = archive.record()
    assert {n for n, e in record.items() if e["run"] == 2} == set(read) | {new}
    assert all(record[f.filename]["run"] == 1 for f in deferred)

    victim = archive.directory / deferred[-1].filename  # the last in line for a re-read
    flip_byte_keeping_mtime(victim)
    found_in, found_at = None, ""
    for run in range(3, 2 + CYCLE):  # runs 3..5: within a cycle of the first run
        result = archive.verify()
        check = next(f for f in result.files if f.filename == victim.name)
        if check.read != DEFERRED and found_in is None:
            assert check.verdict is Verdict.CORRUPT and result.verdict is Verdict.CORRUPT
            # A failing read is a read: when, and when the file last passed.
            assert check.last_read >= first_read[victim.name]
            assert check.detail.endswith(f"; it last passed a full read {first_read[victim.name]}")
            found_in, found_at = run, check.last_read
    assert found_in is not None, "the flipped byte was not found within the cycle"
    assert victim.with_name(victim.name + ".corrupt").exists()
    record = archive.record()
    assert victim.name not in record  # a file that failed is read again next run
    assert all(e["run"] >= 2 for e in record.values())  # every other file read since run 1
    assert set(record) == set(archive.files()) - {victim.name}

    again = archive.verify()  # marked: read again, and its row says when (not "never")
    check = next(f for f in again.files if f.filename == victim.name)
    assert (check.read, check.verdict) == (MARKED, Verdict.CORRUPT)
    assert check.last_read >= found_at
    assert victim.name not in archive.record()

    everything = archive.verify(read_all=True)
    assert set(read_in_full(everything).values()) == {ALL}
    assert len(read_in_full(everything)) == 9
    assert {e["run"] for e in archive.record().values()} == {3 + CYCLE}


def test_pruned_files_drop_out_of_the_record(archive: Archive) -> None:
    archive.verify()
    gone = max(archive.directory.glob("*.zst"), key=lambda p: p.stat().st_mtime).name
    for path in archive.directory.glob(gone + "*"):  # the file and its sidecars
        path.unlink()
    assert archive.verify().verdict is Verdict.OK
    assert gone not in archive.record() and len(archive.record()) == 7
