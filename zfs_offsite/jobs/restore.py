"""Restore a member's snapshot: the chain from the remote index, streamed into `zfs receive`.

Nothing is received before the whole chain is known to exist and link by GUID.
Each file is checked while it streams (sha256 and size against its sidecar,
decompression to the end, the END record), and the last bytes of each stream
are held back until those checks pass: `zfs receive` only commits a snapshot
when it reads the stream's END record, so a full or single-snapshot file that
fails its checks never becomes a snapshot. An `-I` file carries several
snapshots and each is committed as it is read: when such a file fails, the
snapshots it committed are rolled back (`destination.py`). Snapshots from
earlier, sound files stay received.
"""

from __future__ import annotations

import logging
import shlex
import stat
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zfs_offsite.archive.identity import require_root
from zfs_offsite.archive.index import archived_members
from zfs_offsite.archive.model import ArchiveFile, checksum_line
from zfs_offsite.archive.names import (
    below_destination,
    check_member_name,
    checksum_name,
)
from zfs_offsite.errors import (
    ConfigError,
    IntegrityError,
    PermanentError,
    TransientError,
    ZfsOffsiteError,
)
from zfs_offsite.file_kind import path_kind
from zfs_offsite.jobs.archive_read import read_archive
from zfs_offsite.jobs.backup import discover_members
from zfs_offsite.jobs.restore_commands import restore_lines
from zfs_offsite.keys.identities import Identity, configured_identities
from zfs_offsite.plan.chains import RestorePoint, archived_guids, choose_restore_point
from zfs_offsite.remote.store import Store
from zfs_offsite.settings import Settings
from zfs_offsite.stream.progress import ProgressFn, StreamProgress
from zfs_offsite.stream.readback import (
    ReadStats,
    check_can_decrypt,
    checked_chunks,
    read_ahead,
    stream_chunks,
)
from zfs_offsite.transport.ssh import SshEndpoint
from zfs_offsite.values.partials import partial_name
from zfs_offsite.zfs.commands import (
    error_text,
    guid_argv,
    receive_argv,
)
from zfs_offsite.zfs.destination import (
    check_replaceable,
    dataset_exists,
    destination_snapshots,
    ensure_parent,
    next_step,
    prepare_resume,
    recover_failed_link,
    remove_for_force,
    roll_back_inside,
    set_mark,
)
from zfs_offsite.zfs.model import Snapshot
from zfs_offsite.zfs.ownership import RESTORE, Mark, detect_receive_option, is_mine, new_run_id
from zfs_offsite.zfs.runner import Process, Runner

log = logging.getLogger(__name__)

HOLDBACK = 1024 * 1024  # raw bytes kept from `zfs receive` until the file's checks pass


class ReceiveError(PermanentError):
    """`zfs receive` refused or failed; its message is included."""


@dataclass(frozen=True)
class ReceivedFile:
    filename: str
    stored_bytes: int
    raw_bytes: int
    seconds: float
    verified: bool  # False for seed-era files: no sidecar checksum to compare


@dataclass
class RestoreResult:
    """What a restore did, for the report."""

    member: str
    snapshot: str
    destination: str
    files: list[ReceivedFile] = field(default_factory=list)
    guid: int | None = None
    # Received raw (`zfs send -w` files): encrypted, mounts only after `zfs load-key`.
    needs_key: bool = False
    # Archived members of datasets below this one: not in its stream, restored on their own.
    below: tuple[str, ...] = ()
    # Snapshots after `snapshot` that its `-I` file brought and the restore rolled back.
    rolled_back: list[str] = field(default_factory=list)

    @property
    def raw_bytes(self) -> int:
        return sum(f.raw_bytes for f in self.files)

    @property
    def seconds(self) -> float:
        return sum(f.seconds for f in self.files)

    @property
    def mb_per_second(self) -> float:
        return self.raw_bytes / 1e6 / max(self.seconds, 1e-6)


def plan_restore(store: Store, member: str, snapshot: str | None) -> RestorePoint:
    """Read the member's directory and pick the chain; raises ChainError before any receive.

    A name no member can have, or one with no directory on the server, is a
    ConfigError (bad input, exit 2), as `backup --member` treats an unknown name;
    but where the root holds no member at all (missing or empty: an unmounted
    disk), the refusal says so and asks about the disk (`require_root`).
    """
    check_member_name(member, "member")
    archive = read_archive(store, member, None)
    # The archive's root is listed only when the member's directory lists empty (one
    # listing fewer per restore: two requests on S3); a missing directory lists empty.
    if not archive.entries and member not in {entry.name for entry in store.listdir("")}:
        members = archived_members(store)
        if not members:
            require_root(store)  # an empty or missing root is the unmounted disk: ask about it
        raise ConfigError(
            f"member {member}: no such member directory on the backup server "
            f"(members: {', '.join(sorted(members)) or 'none'}): check the name"
        )
    return choose_restore_point(archive.files, snapshot)


def member_datasets(settings: Settings, runner: Runner) -> list[str]:
    """The configured members' datasets: what `--force` never replaces without DESTROY_LIVE.

    Rejected members (a dataset the selection picks but cannot name) count too.
    Where the source pool is not imported (a restore on another host), none of
    its datasets can be the destination: no members.
    """
    if not dataset_exists(runner, settings.source.pool):
        return []
    return [m.dataset for m in discover_members(settings, runner)]


def snapshot_guid(runner: Runner, snapshot: str) -> int | None:
    result = runner.run(guid_argv(snapshot), check=False)
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdigit() else None


def receive_file(
    store: Store,
    member: str,
    file: ArchiveFile,
    process: Process,
    progress: ProgressFn | None = None,
    identities: Sequence[Identity] | None = None,
) -> ReceivedFile:
    """Stream one stored file into a running `zfs receive`, holding back its end until checked."""
    assert process.stdin is not None
    stats, started = ReadStats(), time.monotonic()
    # The last HOLDBACK bytes, in the pieces decompression gave: held as they are, never
    # copied into one buffer (restore's main thread spent most of its time copying them).
    held: deque[bytes] = deque()
    held_bytes = 0
    report = StreamProgress(member, file.filename)
    # Three threads overlap: network reads and hashing, decompression, this pipe.
    chunks = read_ahead(stream_chunks(store, member, file, stats, identities))
    try:
        for out in chunks:
            held.append(out)
            held_bytes += len(out)
            while held_bytes - len(held[0]) >= HOLDBACK:
                first = held.popleft()
                held_bytes -= len(first)
                process.stdin.write(first)
                if progress:
                    progress(report.at(stats.raw_bytes - held_bytes, stats.stored_bytes))
        for piece in held:
            process.stdin.write(piece)
        process.close_stdin()
    except BrokenPipeError:
        process.wait()
        message = _receive_message(file, process)
        # Corrupt data often makes receive stop first: read on to name the real cause.
        try:
            for _ in chunks:
                pass
        except IntegrityError as exc:
            raise IntegrityError(f"{exc} ({message})") from exc
        raise ReceiveError(message) from None
    except BaseException:
        process.kill()
        process.wait()
        raise
    if process.wait() != 0:
        raise ReceiveError(_receive_message(file, process))
    if progress:
        progress(report.at(stats.raw_bytes, stats.stored_bytes))
    return ReceivedFile(
        file.filename,
        stats.stored_bytes,
        stats.raw_bytes,
        time.monotonic() - started,
        file.has_sidecar,  # its checksum was checked as it streamed
    )


def _receive_message(file: ArchiveFile, process: Process) -> str:
    return f"zfs receive of {file.filename} failed: {error_text(process.stderr_text())}"


def restore_member(
    settings: Settings,
    runner: Runner,
    store: Store,
    member: str,
    destination: str,
    *,
    snapshot: str | None = None,
    point: RestorePoint | None = None,
    force: bool = False,
    resume: bool = False,
    destroy_live: bool = False,
    progress: ProgressFn | None = None,
    run: str | None = None,
) -> RestoreResult:
    """Receive the chain of `snapshot` (default: newest archived) into `destination`.

    `point`, when given, is a chain planned before (the flow plans in a task of
    its own); else it is planned here. Encrypted links are read with
    `encryption.identity_file`; with `force`, the configured members' datasets
    are what is never replaced without `destroy_live` (`member_datasets`).
    `run` names the run in the ownership mark of a destination this creates.
    """
    point = point or plan_restore(store, member, snapshot)
    return receive_chain(
        runner,
        store,
        member,
        point,
        destination,
        force=force,
        resume=resume,
        progress=progress,
        identities=configured_identities(settings.encryption),
        members=member_datasets(settings, runner) if force else (),
        destroy_live=destroy_live,
        mark=Mark(RESTORE, run or new_run_id()),
    )


def receive_chain(
    runner: Runner,
    store: Store,
    member: str,
    point: RestorePoint,
    destination: str,
    *,
    force: bool = False,
    resume: bool = False,
    progress: ProgressFn | None = None,
    identities: Sequence[Identity] | None = None,
    members: Sequence[str] = (),
    destroy_live: bool = False,
    mark: Mark | None = None,
) -> RestoreResult:
    """Receive a planned chain into `destination`, file by file, each checked as it streams.

    Encrypted links are decrypted with `identities`: a missing or wrong identity
    fails here, before the destination is touched (each file's header is read).

    `resume` continues into an existing destination that holds the first links
    of the chain (same GUIDs), e.g. after a dropped connection or a replaced
    file; snapshots an unfinished receive of the next file left are rolled
    back first. `force` replaces an existing destination: it is destroyed
    with its snapshots (refused if it has children, clones or holds), then
    received anew; a configured member (`members`, their datasets) or a
    dataset holding a snapshot the archive does not have is replaced only with
    `destroy_live` too. A missing parent dataset is created. A link that fails
    is rolled back to the previous link's target, and the error says what the
    destination holds. A destination this call creates carries `mark`.

    A point inside an `-I` file (`point.inside`) is received up to that file,
    then the destination is rolled back to it, only if this restore created
    the destination or it carries `mark`'s purpose.
    """
    check_can_decrypt(store, member, point.chain, identities)
    start, exists = 0, dataset_exists(runner, destination)
    if exists and force:
        archived = archived_guids(read_archive(store, member, None).files)
        check_replaceable(runner, destination, member, archived, members, destroy_live=destroy_live)
        remove_for_force(runner, destination)
        exists = False
    created = not exists
    by_option = bool(mark) and created and detect_receive_option(runner)
    if not exists:
        ensure_parent(runner, destination)
    elif resume:
        start = prepare_resume(runner, destination, point)
    else:
        raise PermanentError(
            f"destination {destination} exists: name a new dataset, pass --resume to "
            "continue a restore into it, or --force to replace it (it is destroyed first)"
        )
    result = RestoreResult(
        member, point.snapshot, destination, needs_key=any(f.raw for f in point.chain)
    )
    log.info("%s: restoring %s from %d file(s)", member, point.snapshot, len(point.chain))
    for index, file in enumerate(point.chain[start:], start):
        before = destination_snapshots(runner, destination)
        # Links after the first go into the dataset this restore created: -F only
        # rolls back what mounting changed since the previous link.
        marks_now = mark if created and index == 0 else None
        argv = receive_argv(
            destination, force=index > 0, mark=marks_now.value if marks_now and by_option else None
        )
        process = runner.start(argv, stdin=True)
        try:
            received = receive_file(store, member, file, process, progress, identities)
            result.files.append(received)
        except (ZfsOffsiteError, OSError) as exc:
            raise _link_failed(runner, member, point, destination, index, before, exc) from exc
        if marks_now and not by_option:
            set_mark(runner, destination, marks_now)
    if point.inside is not None:
        owned = created or (mark is not None and is_mine(runner, destination, mark.purpose))
        result.rolled_back = roll_back_inside(runner, destination, point, owned=owned)
    result.guid = snapshot_guid(runner, f"{destination}@{point.snapshot}")
    expected = point.guid
    if expected is not None and result.guid != expected:
        raise IntegrityError(
            f"{destination}@{point.snapshot} has GUID {result.guid}, the archive records {expected}"
        )
    if result.needs_key:
        log.info(
            "%s: %s was received raw, still encrypted: `zfs load-key %s` (with the source "
            "dataset's key or passphrase), then `zfs mount %s`",
            member,
            destination,
            destination,
            destination,
        )
    return result


def _link_failed(
    runner: Runner,
    member: str,
    point: RestorePoint,
    destination: str,
    index: int,
    before: tuple[Snapshot, ...] | None,
    exc: Exception,
) -> ZfsOffsiteError:
    """The error for a failed link: its cause, then what was rolled back and what is there."""
    file = point.chain[index]
    cause = str(exc) if file.filename in str(exc) else f"{member}/{file.filename}: {exc}"
    damaged = isinstance(exc, IntegrityError)
    try:
        outcome = recover_failed_link(runner, destination, point, index, before, damaged=damaged)
    except ZfsOffsiteError as err:  # e.g. the NAS is unreachable in pull mode
        again = next_step(point, index, exists=True, damaged=damaged)
        outcome = f"what {destination} holds could not be checked ({err}); {again}"
    message = f"{cause}; {outcome}"
    if isinstance(exc, IntegrityError):
        return IntegrityError(message)
    if isinstance(exc, ReceiveError):
        return ReceiveError(message)
    return TransientError(message) if getattr(exc, "retryable", False) else PermanentError(message)


def download_chain(
    store: Store, member: str, directory: Path, *, snapshot: str | None = None
) -> tuple[RestorePoint, list[Path]]:
    """Plan the chain of `snapshot` (default: newest archived) and download it."""
    point = plan_restore(store, member, snapshot)
    return point, download_files(store, member, point, directory)


def download_files(store: Store, member: str, point: RestorePoint, directory: Path) -> list[Path]:
    """Copy a planned chain into `directory` (checked while copying), with `.sha256` files."""
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISDIR(mode):
        raise ConfigError(
            f"--to-dir {directory} is {path_kind(mode)}, not a directory: name a directory "
            "to download the chain into (created if missing)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for file in point.chain:
        path = directory / file.filename
        partial = directory / partial_name(file.filename)
        stats = ReadStats()
        try:
            with partial.open("wb") as out:
                for chunk in checked_chunks(store, member, file, stats):
                    out.write(chunk)
        except (ZfsOffsiteError, OSError):
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)
        checksum = checksum_line(stats.sha256, file.filename)
        (directory / checksum_name(file.filename)).write_bytes(checksum)
        paths.append(path)
    return paths


def receive_commands(
    paths: list[Path],
    destination: str,
    identity_file: Path | None = None,
    *,
    raw: bool = False,
    roll_back_to: str | None = None,
    nas: SshEndpoint | None = None,
) -> list[str]:
    """Shell lines that restore downloaded files with standard tools, in order.

    The files' checksums are checked first (`sha256sum -c`), then each file is
    received as `restore_lines` says (decrypt, decompress, `zfs receive`).
    """
    lines = [f"cd {shlex.quote(str(paths[0].parent))}", "sha256sum -c -- *.sha256"]
    return lines + restore_lines(
        [path.name for path in paths],
        destination,
        identity_file,
        raw=raw,
        roll_back_to=roll_back_to,
        nas=nas,
    )


def below_note(member: str, below: Sequence[str], destination: str) -> str:
    """One line naming the members below `member` that this restore does not bring back.

    Their mount points are empty directories in the restored dataset: each is a
    member of its own, restored with its own command (parents first).
    """
    first = below[0]
    where = below_destination(member, first, destination) if destination else "<dataset>"
    return (
        f"not in this restore: {len(below)} member(s) below {member} in the archive "
        f"({', '.join(below)}); restore each on its own, e.g. "
        f"zfs-offsite restore {shlex.quote(first)} {shlex.quote(where)}"
    )
