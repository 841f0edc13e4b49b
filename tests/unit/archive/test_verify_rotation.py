"""The verify rotation: which files a run reads in full, and the record that remembers it."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import random
from pathlib import Path

import pytest

from tests.support.archive_files import sidecar
from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.archive.names import BackupName, Compression
from zfs_offsite.archive.verify_rotation import (
    ALL,
    CHANGED,
    MARKED,
    NEVER_READ,
    RECORD_UNREADABLE,
    ROTATION,
    VERIFY_RECORD,
    FileRecord,
    MemberRecord,
    Selection,
    choose_files,
    load_verify_record,
    merge_member,
    read_verify_record,
    record_note,
    render_record,
    updated_record,
    write_verify_record,
)
from zfs_offsite.errors import PermanentError
from zfs_offsite.jobs.verify import DEFERRED, SEALED, FileCheck, MemberVerification, Verdict
from zfs_offsite.remote.local import LocalStore
from zfs_offsite.remote.store import write_small_file


def file(n: int, size: int = 100, *, sha: str | None = None) -> ArchiveFile:
    """File number `n` of member a: a sidecar'd zstd incremental of `size` bytes."""
    name = BackupName("elabfs-a", f"s{n:04d}", Compression.ZSTD, f"s{n - 1:04d}" if n else None)
    identity = dataclasses.replace(sidecar("tank/a", f"s{n:04d}", n), sha256=sha or f"{n:064x}")
    return ArchiveFile(name.filename, name, size, 1000.0 + n, identity)


def passed_now(selection: Selection, files: list[ArchiveFile], when: str) -> MemberRecord:
    """The record after a run in which every file read passed."""
    passed = {
        f.filename: FileRecord(when, selection.run, f.size, int(f.mtime), f.sidecar.sha256)
        for f in files
        if f.filename in selection.read and f.sidecar is not None
    }
    return updated_record(selection, passed, [f.filename for f in files])


def test_a_first_run_reads_everything_then_a_share_oldest_first() -> None:
    files = [file(n) for n in range(8)]
    first = choose_files(files, None, 4)
    assert first.run == 1 and set(first.read.values()) == {NEVER_READ} and not first.deferred
    record = passed_now(first, files, "2026-01-01T00:00:00+00:00")

    second = choose_files(files, record, 4)
    assert second.run == 2
    assert list(second.read) == [files[0].filename, files[1].filename]  # 800 bytes / 4 runs
    assert set(second.read.values()) == {ROTATION}
    assert set(second.deferred) == {f.filename for f in files[2:]}
    record = passed_now(second, files, "2026-01-08T00:00:00+00:00")
    third = choose_files(files, record, 4)
    assert list(third.read) == [files[2].filename, files[3].filename]  # the longest unread


def test_new_changed_and_marked_files_are_always_read_on_top_of_the_share() -> None:
    files = [file(n) for n in range(8)]
    record = passed_now(choose_files(files, None, 4), files, "2026-01-01T00:00:00+00:00")
    changed = dataclasses.replace(files[5], size=99)  # rewritten under the same name
    touched = dataclasses.replace(files[6], mtime=5000.0)
    resent = dataclasses.replace(files[3], sidecar=sidecar("tank/a", "x", 1))  # other sha256
    marked = dataclasses.replace(files[7], corrupt="sha256 mismatch")
    new = file(8, size=10_000)
    now = [*files[:3], resent, files[4], changed, touched, marked, new]
    chosen = choose_files(now, record, 4)
    assert chosen.read == {
        files[0].filename: ROTATION,  # a quarter of the 400 bytes of unchanged older files
        resent.filename: CHANGED,
        changed.filename: CHANGED,
        touched.filename: CHANGED,
        marked.filename: MARKED,
        new.filename: NEVER_READ,  # its 10 kB do not eat the older files' share
    }
    assert set(chosen.deferred) == {files[1].filename, files[2].filename, files[4].filename}


def test_all_and_a_cycle_of_one_read_everything() -> None:
    files = [file(n) for n in range(5)]
    record = passed_now(choose_files(files, None, 4), files, "2026-01-01T00:00:00+00:00")
    assert set(choose_files(files, record, 4, read_all=True).read.values()) == {ALL}
    assert not choose_files(files, record, 1).deferred
    assert len(choose_files(files, record, 4).read) == 2


def simulate(
    cycle: int, runs: int, rng: random.Random, *, churn: bool
) -> tuple[list[int], dict[str, list[int]]]:
    """Verify runs over a member's files; with `churn`, backups add and prune removes files.

    Returns each run's bytes read by rotation (not new files) and, per file, the runs
    that read it.
    """
    files = {f.filename: f for f in (file(n, rng.randint(1, 5000)) for n in range(20))}
    record: MemberRecord | None = None
    reads: dict[str, list[int]] = {name: [] for name in files}
    rotated: list[int] = []
    next_n = 20
    for run in range(1, runs + 1):
        if churn and run > 1:
            for _ in range(rng.randint(0, 3)):
                new = file(next_n, rng.choice([10, 100, 50_000]))
                files[new.filename], reads[new.filename] = new, []
                next_n += 1
            recently = sorted(files, key=lambda n: reads[n][-1] if reads[n] else 0)[-3:]
            for name in rng.sample(recently, k=min(len(recently), rng.randint(0, 2))):
                del files[name]  # prune takes files that were just read: the worst case
        listing = list(files.values())
        chosen = choose_files(listing, record, cycle)
        assert chosen.run == run
        rotated.append(sum(files[n].size for n, why in chosen.read.items() if why != NEVER_READ))
        for name in chosen.read:
            reads[name].append(run)
        record = passed_now(chosen, listing, f"2026-01-01T00:00:{run:02d}+00:00")
        assert set(record.files) == set(files)  # pruned files drop out
    return rotated, {n: reads[n] for n in files}


@pytest.mark.parametrize("cycle", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("churn", [False, True], ids=["steady", "backups-and-prunes"])
def test_every_file_is_read_at_least_once_every_cycle_runs(cycle: int, churn: bool) -> None:
    for seed in range(20):
        _, reads = simulate(cycle, 30, random.Random(seed), churn=churn)
        for name, runs in reads.items():
            assert runs, f"{name} never read"
            gaps = [b - a for a, b in itertools.pairwise(runs)]
            assert max(gaps, default=0) <= cycle, (seed, name, runs)


def test_a_steady_archive_reads_about_its_share_each_run() -> None:
    rng = random.Random(1)
    files = [file(n, rng.randint(1, 5000)) for n in range(40)]
    total = sum(f.size for f in files)
    record = passed_now(choose_files(files, None, 4), files, "2026-01-01T00:00:00+00:00")
    for run in range(2, 14):
        chosen = choose_files(files, record, 4)
        read = sum(f.size for f in files if f.filename in chosen.read)
        assert total / 4 <= read < total / 4 + max(f.size for f in files)
        record = passed_now(chosen, files, f"2026-01-{run:02d}T00:00:00+00:00")


def test_files_that_failed_or_vanished_are_left_out_of_the_record() -> None:
    files = [file(n) for n in range(3)]
    chosen = choose_files(files, None, 4)
    good = FileRecord("t", 1, 100, 1000, files[0].sidecar.sha256)  # type: ignore[union-attr]
    record = updated_record(chosen, {files[0].filename: good}, [files[0].filename])
    assert record == MemberRecord(1, {files[0].filename: good})


def test_a_concurrent_newer_read_wins_the_merge_and_unknown_files_drop() -> None:
    old = FileRecord("2026-01-01T00:00:00+00:00", 3, 100, 1000, "a" * 64)
    new = dataclasses.replace(old, verified="2026-01-02T00:00:00+00:00", run=4)
    other_file = dataclasses.replace(new, sha256="b" * 64)
    ours = MemberRecord(4, {"x": old, "y": new, "z": old})
    theirs = MemberRecord(5, {"x": new, "y": old, "z": other_file, "gone": new})
    assert merge_member(ours, theirs) == MemberRecord(5, {"x": new, "y": new, "z": old})


def test_the_record_round_trips_and_merges_on_the_server(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "alice").mkdir()
    entry = FileRecord("2026-01-01T00:00:00+00:00", 1, 100, 1000, "a" * 64, sealed=True)
    write_verify_record(store, {"alice": MemberRecord(1, {"f": entry})})
    write_verify_record(store, {"bob": MemberRecord(2, {})})
    assert read_verify_record(store) == {
        "alice": MemberRecord(1, {"f": entry}),
        "bob": MemberRecord(2, {}),
    }
    write_verify_record(store, {}, keep=["alice"])  # bob's directory is gone
    assert set(read_verify_record(store)) == {"alice"}
    assert json.loads((tmp_path / VERIFY_RECORD).read_text())["format"] == 1
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"format": 1, "members": {"a": {"runs": "x", "files": {}}}}',
        b'{"format": 1, "members": {"a": {"runs": 1, "files": {"f": {"run": 1}}}}}',
        b'{"format": 1, "members": {"a": {"runs": 1, "files": {"f": '
        b'{"verified": 5, "run": 1, "size": 1, "mtime": 1, "sha256": "x"}}}}}',
        b'{"format": 99, "members": {}}',
        b"\xff\xfe",
    ],
)
def test_an_unreadable_record_is_one_warning_and_every_file_counts_as_unread(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / VERIFY_RECORD).write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert read_verify_record(LocalStore(tmp_path)) == {}
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert VERIFY_RECORD in warning and "read in full" in warning and "\n" not in warning
    files = [file(0)]
    assert choose_files(files, None, 4).read == {files[0].filename: NEVER_READ}


def test_a_directory_in_the_records_place_is_a_warning_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / VERIFY_RECORD).mkdir()
    assert read_verify_record(LocalStore(tmp_path)) == {}
    assert "unreadable (it is a directory at the target's root: move it aside" in caplog.text


def test_the_rendered_record_is_what_was_parsed() -> None:
    members = {"a": MemberRecord(3, {"f": FileRecord("t", 2, 1, 2, "c" * 64)})}
    data = render_record(members)
    assert json.loads(data)["members"]["a"]["files"]["f"]["run"] == 2


def test_a_deeply_nested_record_is_the_one_warning_and_a_full_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """100,000 nested `[` make the JSON parser raise RecursionError: a warning, not a failure."""
    (tmp_path / VERIFY_RECORD).write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with caplog.at_level(logging.WARNING):
        loaded = load_verify_record(LocalStore(tmp_path))
    assert loaded.members == {} and "maximum recursion depth" in loaded.problem
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert VERIFY_RECORD in warning and "read in full" in warning and "\n" not in warning
    files = [file(n) for n in range(3)]
    chosen = choose_files(files, None, 4, record_lost=True)
    assert chosen.read == {f.filename: RECORD_UNREADABLE for f in files} and not chosen.deferred


def test_the_report_line_of_an_unreadable_record_says_why_and_that_all_was_read(
    tmp_path: Path,
) -> None:
    (tmp_path / VERIFY_RECORD).write_bytes(b"{not json")
    loaded = load_verify_record(LocalStore(tmp_path))
    assert record_note(loaded.problem) == (
        f"the verify record {VERIFY_RECORD} was unreadable ({loaded.problem}): every file was "
        "read in full"
    )
    assert loaded.problem.startswith("Expecting property name")
    assert load_verify_record(LocalStore(tmp_path / "none")).problem == ""


def test_a_file_recorded_in_a_run_its_member_never_had_is_read_within_the_cycle() -> None:
    """An entry from a run beyond the member's count was never 'due' and sorted last in
    the rotation: with the share taken by the others it was never read again."""
    files = [file(n, size=100) for n in range(8)]
    entries = {
        f.filename: FileRecord(
            "2026-01-01T00:00:00+00:00",
            10**9 if n == 0 else 5,
            f.size,
            int(f.mtime),
            f.sidecar.sha256 if f.sidecar else "",
        )
        for n, f in enumerate(files)
    }
    record = MemberRecord(5, entries)
    assert choose_files(files, record, 4).read[files[0].filename] == NEVER_READ
    cycle, read = 4, set()
    for night in range(2 * cycle):
        selection = choose_files(files, record, cycle)
        read |= set(selection.read)
        record = passed_now(selection, files, f"2026-01-{night + 2:02d}T00:00:00+00:00")
    assert files[0].filename in read


@pytest.mark.parametrize(
    "nonsense",
    [
        {"run": 6},  # beyond the member's 5 runs
        {"run": -1},
        {"run": 0},  # runs count from 1
        {"verified": "yesterday"},
        {"verified": "2026-01-01T00:00:00"},  # no time zone: not what verify writes
        {"size": -100},
        {"sha256": "not a checksum"},
    ],
)
def test_an_entry_that_cannot_be_true_counts_as_never_read(nonsense: dict[str, object]) -> None:
    files = [file(n) for n in range(4)]
    entries = {
        f.filename: FileRecord("2026-01-05T00:00:00+00:00", 5, f.size, int(f.mtime), f"{n:064x}")
        for n, f in enumerate(files)
    }
    odd = dataclasses.replace(entries[files[0].filename], **nonsense)  # type: ignore[arg-type]
    entries[files[0].filename] = odd
    chosen = choose_files(files, MemberRecord(5, entries), 4)
    assert chosen.read[files[0].filename] == NEVER_READ
    assert files[0].filename not in chosen.deferred


def test_an_impossible_entry_never_wins_the_merge() -> None:
    mine = FileRecord("2026-01-02T00:00:00+00:00", 4, 100, 1000, "a" * 64)
    future = dataclasses.replace(mine, verified="2026-01-03T00:00:00+00:00", run=10**9)
    assert merge_member(MemberRecord(4, {"x": mine}), MemberRecord(4, {"x": future})) == (
        MemberRecord(4, {"x": mine})
    )


def test_a_directory_in_the_records_place_is_named_and_nothing_is_left_beside_it(
    tmp_path: Path,
) -> None:
    (tmp_path / VERIFY_RECORD).mkdir()
    with pytest.raises(PermanentError) as caught:
        write_verify_record(LocalStore(tmp_path), {"alice": MemberRecord(1, {})})
    assert str(caught.value) == (
        f"{VERIFY_RECORD} is a directory at the target's root: move it aside so verify can "
        "record what it read"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [VERIFY_RECORD]


def test_a_small_file_that_cannot_take_its_place_leaves_no_partial(tmp_path: Path) -> None:
    """Each verify left a `.partial` at the root when a directory held the record's name."""
    (tmp_path / "record").mkdir()
    with pytest.raises(OSError):
        write_small_file(LocalStore(tmp_path), "record", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record"]


def test_the_member_row_counts_files_read_and_deferred() -> None:
    """It said 'not read this run (rotation)', one deferred file's note, while 3 were read."""
    read = [FileCheck(f"f{n}", Verdict.OK, read=ROTATION) for n in range(3)]
    later = [FileCheck("d", Verdict.OK, "not read this run (rotation); ...", read=DEFERRED)]
    member = MemberVerification("a", [*later, *read, *later])
    assert member.detail == (
        "3 file(s) read in full this run, 2 deferred to a later run (rotation)"
    )
    sealed = FileCheck("s", Verdict.OK, SEALED, read=NEVER_READ)
    assert MemberVerification("a", [*later, sealed]).detail == (
        f"1 file(s) read in full this run, 1 deferred to a later run (rotation); {SEALED}"
    )
    bad = FileCheck("b", Verdict.CORRUPT, "a/b: sha256 mismatch", read=ROTATION)
    assert MemberVerification("a", [*later, bad]).detail == "a/b: sha256 mismatch"
