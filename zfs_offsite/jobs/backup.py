"""One member's backup, end to end: read the archive, plan, stream, write sidecars.

These plain functions are what the Prefect tasks wrap. Like every job's entry
point they take the `Settings` first, then the connections they work over
(the caller owns those, and shares one store over many members), then what
they work on; `backup_member` opens its own, for scripts and tests.
"""

from __future__ import annotations

import logging
import time
from contextlib import closing, nullcontext
from dataclasses import dataclass, replace

from zfs_offsite import __version__, cancel
from zfs_offsite.archive.commit import commit_backup
from zfs_offsite.archive.identity import (
    ArchiveRootError,
    RootState,
    establish,
    read_marker,
    survey_root,
)
from zfs_offsite.archive.lock import member_lock
from zfs_offsite.archive.model import MemberArchive, Sidecar
from zfs_offsite.archive.names import BackupName, checksum_name, parse_backup_name
from zfs_offsite.connect import open_runner, open_store, source_host
from zfs_offsite.errors import (
    ArchiveConflictError,
    ConfigError,
    NameTooLongError,
    PermanentError,
    ZfsOffsiteError,
)
from zfs_offsite.jobs import ledger
from zfs_offsite.jobs.archive_read import read_archive
from zfs_offsite.jobs.seed_base import prove_seed_base
from zfs_offsite.plan.backup import Action, BackupPlan, plan_backup, prefer_unfinished, superseded
from zfs_offsite.plan.cadence import FullCadence
from zfs_offsite.plan.chains import between
from zfs_offsite.remote.store import Store
from zfs_offsite.settings import Settings
from zfs_offsite.stream.checkpoints import StreamIdentity, parse_checkpoints, why_not_resume
from zfs_offsite.stream.compression import Compressor, compressor
from zfs_offsite.stream.limit import RateMeter, process_limiter
from zfs_offsite.stream.progress import ProgressFn, StreamProgress
from zfs_offsite.stream.resume import attempts_of
from zfs_offsite.stream.upload import Resumable, StreamResult, stream_to_store
from zfs_offsite.values.partials import checkpoint_name, partial_name, split_partial
from zfs_offsite.zfs.commands import (
    dataset_compression,
    detect_compressed_send,
    detect_features,
    estimate_send_size,
    list_datasets,
    recompresses_little,
    send_argv,
)
from zfs_offsite.zfs.members import SKIP_PROPERTY, Member, Selection, select
from zfs_offsite.zfs.model import ZfsFeatures
from zfs_offsite.zfs.protect import choose, mark_tag, marked_before, protect, stale_marks
from zfs_offsite.zfs.record import record_archive, record_property
from zfs_offsite.zfs.runner import CommandFailed, Process, Runner

log = logging.getLogger(__name__)

HEADER_MAX = 64 * 1024  # a checkpoint file's first line (the stream's identity) is far shorter


@dataclass(frozen=True)
class BackupResult:
    """What happened to one member: the row of the report."""

    member: str
    action: Action
    reason: str
    base: str | None = None
    snapshot: str | None = None  # the snapshot sent (or that would be)
    remote_path: str | None = None
    estimated_bytes: int | None = None
    stream: StreamResult | None = None
    dry_run: bool = False
    protection: str | None = None  # how the uploaded snapshot was marked as next base
    base_guid: int | None = None  # the snapshots' identities, for the audit trail
    snapshot_guid: int | None = None
    raw: bool = False  # sent raw (`zfs send -w`): still encrypted with the dataset's key
    bandwidth: str = ""  # the upload limit(s) in force while it streamed; "": none set
    # How this upload's earlier tries in this run ended (the task layer's retries), oldest
    # first, e.g. `try 1 failed after 21.3 s: …`; the figures above are the last try's.
    earlier_tries: tuple[str, ...] = ()

    @property
    def ratio(self) -> float | None:
        if not self.stream or not self.stream.stored_bytes:
            return None
        return self.stream.raw_bytes / self.stream.stored_bytes

    @property
    def mb_per_second(self) -> float | None:
        """Raw MB/s of what this upload sent, over the time it was sending.

        A resume sent only the stored bytes after the earlier attempt's: the raw
        bytes behind them are counted in proportion, and the time it spent checking
        the stored part is left out, so the figure holds up against a bandwidth limit.
        """
        if not self.stream:
            return None
        s = self.stream
        raw_sent = s.raw_bytes * s.sent_bytes / s.stored_bytes if s.stored_bytes else s.raw_bytes
        return raw_sent / 1e6 / s.sending_seconds

    @property
    def stored_mb_per_second(self) -> float | None:
        """Stored MB/s this upload sent over the link (what a bandwidth limit paces)."""
        if not self.stream:
            return None
        return self.stream.sent_bytes / 1e6 / self.stream.sending_seconds


def discover_members(settings: Settings, runner: Runner | None = None) -> list[Member]:
    """All members and their snapshots, from one `zfs get` over the pool.

    A dataset that cannot be a member comes back with `Member.error` set: the
    caller fails that member alone and backs up the others. Datasets left out
    on purpose are logged here; `discover_selection` returns them for listing.
    """
    return discover_selection(settings, runner).members


def backup_members(settings: Settings, runner: Runner | None = None) -> list[Member]:
    """The members a backup or drill covers; none at all is an error, never a quiet night.

    A typo in `source.dataset_prefix` (or datasets no longer there) would
    otherwise give a green run that backs up nothing, night after night.
    """
    selection = discover_selection(settings, runner)
    require_members(settings, selection)
    return selection.members


def require_members(settings: Settings, selection: Selection) -> None:
    """No member at all is a ConfigError naming the setting: the one check, for every job."""
    if not selection.members:
        raise ConfigError(nothing_selected(settings, len(selection.excluded)))


def nothing_selected(settings: Settings, left_out: int) -> str:
    """One line: which setting selected no dataset, and how to see what the pool has."""
    source = settings.source
    if source.datasets:
        how = f"source.datasets ({', '.join(source.datasets)})"
    elif source.select_property:
        how = f"source.select_property ({source.select_property}=on)"
    else:
        how = f"source.dataset_prefix ({source.dataset_prefix!r} below {source.pool})"
    why = f"; {left_out} dataset(s) opted out with zfs-offsite:skip" if left_out else ""
    return (
        f"no dataset of pool {source.pool} is selected by {how}{why}: nothing would be backed "
        f"up; check the setting against `zfs list -r {source.pool}`"
    )


def discover_selection(settings: Settings, runner: Runner | None = None) -> Selection:
    """The members (see `discover_members`) and the datasets below them left out, with why."""
    props = [settings.source.select_property] if settings.source.select_property else []
    props += [SKIP_PROPERTY, record_property(str(settings.target.parsed))]
    if runner is None:
        with closing(open_runner(settings)) as own:
            return discover_selection(settings, own)
    marks = detect_features(runner).bookmarks
    try:
        datasets = list_datasets(
            runner, settings.source.pool, props, with_bookmarks=marks, with_encryption=True
        )
    except CommandFailed as exc:
        if "does not exist" not in exc.result.stderr:
            raise
        raise ConfigError(
            f"setting source.pool ({settings.origin('source.pool')}): no pool "
            f"{settings.source.pool} on {runner.host}; name an imported pool (zpool list)"
        ) from exc
    selection = select(
        datasets,
        settings.source.pool,
        settings.source.dataset_prefix,
        settings.source.datasets,
        settings.source.select_property,
        scratch=settings.scratch_dataset,
    )
    for member in selection.members:
        if member.error is not None:
            log.warning("%s", member.error)
    for left_out in selection.excluded:
        log.info("%s: %s", left_out.dataset, left_out.reason)
    if (kept := ledger.current()) is not None:
        kept.discovered(selection.members)
    return selection


def prepare_archive(
    settings: Settings,
    store: Store,
    runner: Runner | None,
    members: list[Member] | None = None,
    *,
    write: bool = True,
) -> None:
    """Before a backup writes anything: is the target's root this tool's archive?

    A marked root costs one stat. A missing or empty one is a first backup only
    if no member carries this target's mark or archive record (else the disk is
    not mounted: every member fails, nothing is written); see
    `archive/identity.establish`.
    `members` None: the pool's members are listed (only when the marker is absent).
    """

    def evidence() -> str | None:
        with closing(open_runner(settings)) if runner is None else nullcontext(runner) as zfs:
            found = discover_members(settings, zfs) if members is None else members
            target = str(settings.target.parsed)
            return marked_before(zfs, found, mark_tag(target), record_property(target))

    establish(store, evidence, write=write)


def root_refusal(
    settings: Settings, store: Store, runner: Runner | None, members: list[Member]
) -> str | None:
    """What a backup would refuse at a missing or empty root (the unmounted disk), or None.

    `zfs-offsite plan` fails every member with it rather than promise fulls the
    backup would never send. The rule is `prepare_archive`'s, run as a dry run;
    a seed or foreign root is not asked here: plan still plans on it, and its
    note says what backup will want (`archive/identity.root_note`).
    """
    if survey_root(store).state not in (RootState.MISSING, RootState.EMPTY):
        return None
    try:
        prepare_archive(settings, store, runner, members, write=False)
    except ArchiveRootError as exc:
        return str(exc)
    return None


def unfinished_uploads(archive: MemberArchive) -> list[BackupName]:
    """The files whose upload was cut after a checkpoint: a run can resume them."""
    names = {entry.name for entry in archive.partials}
    unfinished = []
    for partial in sorted(names):
        split = split_partial(partial)
        if split is None or checkpoint_name(partial) not in names:
            continue
        name = parse_backup_name(split[0])
        if name is not None:
            unfinished.append(name)
    return unfinished


def recorded_stream(
    store: Store, archive: MemberArchive, name: BackupName
) -> StreamIdentity | None:
    """The stream the newest cut upload of `name` was for: its checkpoint file's header.

    None when no checkpoint file of it can be read (the upload would start afresh).
    """
    names = {entry.name for entry in archive.partials}
    attempts = [
        entry
        for entry in attempts_of(archive.partials, name.filename)
        if checkpoint_name(entry.name) in names
    ]
    if not attempts:
        return None
    head = b""
    try:
        for data in store.read_chunks(f"{archive.member}/{checkpoint_name(attempts[0].name)}"):
            head += data
            if b"\n" in head or len(head) > HEADER_MAX:
                break
    except (OSError, ZfsOffsiteError):
        return None
    recorded = parse_checkpoints(head.split(b"\n", 1)[0] + b"\n")
    return recorded.identity if recorded else None


def why_not_resumed_tonight(
    recorded: StreamIdentity | None, name: BackupName, level: int, raw: bool
) -> str | None:
    """Why tonight's stream settings (compression and its level, raw send, encryption) could not
    resume the cut upload of `name` that recorded `recorded`; None: they could."""
    if recorded is None:
        return "its checkpoints are unreadable"
    tonight = replace(
        recorded,
        compression=name.compression.value,
        level=level,
        raw=raw,
        # an encrypted stream records no checkpoints; were one found, it never reproduces
        recipients=("age",) if name.encrypted else (),
    )
    return why_not_resume(recorded, tonight)


def resumable_tonight(
    settings: Settings, store: Store, archive: MemberArchive, raw: bool
) -> list[BackupName]:
    """The cut uploads tonight's stream settings can resume: only these may be preferred over
    the newest snapshot (one that would start again from byte 0 is no reason to wait)."""
    resumable = []
    for name in unfinished_uploads(archive):
        recorded = recorded_stream(store, archive, name)
        why = why_not_resumed_tonight(recorded, name, settings.compression.effective_level, raw)
        if why is None:
            resumable.append(name)
        else:
            log.info(
                "%s: the cut upload of %s cannot be resumed tonight (%s): not preferred",
                archive.member,
                name.filename,
                why,
            )
    return resumable


def plan_member(
    settings: Settings, store: Store, member: Member, *, force_full: bool = False
) -> tuple[BackupPlan, MemberArchive]:
    """Read the member's directory afresh and decide what to send."""
    archive = read_archive(store, member.name, member.dataset_part)
    cadence = FullCadence(settings.full.after_incrementals, settings.full.after_days)
    now = time.time()

    def plan_for(member: Member) -> BackupPlan:
        return plan_backup(
            member,
            archive.files,
            settings.compression.algorithm,
            force_full=force_full,
            cadence=cadence,
            now=now,
            encrypted=settings.encryption.enabled,
            raw_send=settings.source.raw_send,
            age_raw_sends=settings.encryption.age_raw_sends,
        )

    plan = plan_for(member)
    if not force_full and plan.sends and archive.partials:
        unfinished = resumable_tonight(settings, store, archive, plan.raw)
        plan = prefer_unfinished(plan, member, unfinished, plan_for)
    if plan.snapshot is not None:
        tag = mark_tag(str(settings.target.parsed))
        plan = replace(plan, stale_marks=stale_marks(member, tag, plan.snapshot))
    if (kept := ledger.current()) is not None:
        kept.planned(plan, plan_result(plan))
    return plan, archive


def plan_result(plan: BackupPlan, *, dry_run: bool = False) -> BackupResult:
    """The report row of a plan before anything is sent (all of it, for plans that send nothing)."""
    base = plan.base.name if plan.base else None
    snapshot = plan.snapshot.name if plan.snapshot else None
    return BackupResult(
        plan.member,
        plan.action,
        plan.reason,
        base,
        snapshot,
        dry_run=dry_run,
        base_guid=plan.base.guid if plan.base else None,
        snapshot_guid=plan.snapshot.guid if plan.snapshot else None,
        raw=plan.raw,
    )


def refuse_linked_member(store: Store, member: str) -> None:
    """Never write through a symlink or onto a file where the member's directory should be."""
    entry = store.stat(member)
    if entry is not None and (entry.is_symlink or not entry.is_dir):
        what = "a symlink (never followed)" if entry.is_symlink else "a file"
        raise PermanentError(
            f"member {member}: {member} on the backup server is {what}, not a directory: "
            "make it a real directory (or point target.url at where it links)"
        )


def check_name_fits(store: Store, member: str, filename: str) -> None:
    """Fail before sending if the server's file system cannot hold the names this file needs."""
    space = store.space(member)
    if space is None:
        return
    longest = partial_name(checksum_name(filename), "0" * 12)
    if len(longest.encode()) > space.name_max:
        allowed = space.name_max - (len(longest.encode()) - len(filename.encode()))
        raise NameTooLongError(
            f"member {member}: the backup file name {filename[:40]}… is "
            f"{len(filename.encode())} bytes; the backup server allows {space.name_max} per name "
            f"and zfs-offsite adds up to {len(longest) - len(filename)} for sidecars and partial "
            f"files, so at most {allowed}: shorten the snapshot naming schema or the dataset name"
        )


def sends_compressed(setting: str, runner: Runner, dataset: str, *, raw: bool) -> bool:
    """`zfs send -c` for this dataset? By source.compressed_send, and only if this zfs has it.

    It spares the NAS decompressing blocks only to have them compressed again
    (bench/compressed_send.py). auto keeps it to zstd and gzip datasets: lz4
    blocks of text stored as they are cost up to ~20 % more stored bytes than
    our zstd over the plain stream. A raw send is compressed already. At most
    two short `zfs` calls, made only for a file about to be sent.
    """
    if setting == "never" or raw:
        return False
    if setting == "auto" and not recompresses_little(dataset_compression(runner, dataset)):
        return False
    return detect_compressed_send(runner)


def carried_snapshots(
    runner: Runner, plan: BackupPlan, *, intermediates: bool
) -> tuple[tuple[str, int], ...]:
    """The snapshots an `-I` send of `plan` carries between base and target, for its sidecar.

    A full or a `-i` (from a bookmark) carries none. Listed just before the
    send: one destroyed in between is listed but not carried, and a restore of
    it then fails saying it is not there (never restores something else).
    """
    if plan.base is None or not intermediates or plan.snapshot is None:
        return ()
    listed = list_datasets(runner, plan.dataset).get(plan.dataset)
    return between(listed.snapshots if listed else (), plan.base, plan.snapshot)


def execute_plan(
    settings: Settings,
    runner: Runner,
    store: Store | None,
    plan: BackupPlan,
    *,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
    run: str | None = None,
) -> BackupResult:
    """Carry out a plan under the member's writer lock: stream, then commit file and sidecars.

    `run` names this run in the lock file (a flow run id), so a second run can
    say who holds the member. The outcome also goes to the process's ledger
    (`jobs/ledger.py`), which outlives a lost Prefect server.
    """
    kept = ledger.current()
    try:
        result = _execute_plan(
            settings, plan, runner, store, dry_run=dry_run, progress=progress, run=run
        )
    except BaseException as exc:
        if kept is not None:
            kept.failed(plan.member, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    if kept is not None:
        kept.finished(result)
    return result


def _execute_plan(
    settings: Settings,
    plan: BackupPlan,
    runner: Runner,
    store: Store | None,
    *,
    dry_run: bool,
    progress: ProgressFn | None,
    run: str | None,
) -> BackupResult:
    result = plan_result(plan, dry_run=dry_run)
    if plan.action is Action.CONFLICT:
        raise ArchiveConflictError(f"member {plan.member}: {plan.reason}")
    if not plan.sends:
        return result
    assert plan.snapshot is not None and plan.name is not None
    remote_path = f"{plan.member}/{plan.name.filename}"
    send_from = plan.send_from
    from_bookmark = send_from is not None and "#" in send_from
    features = detect_features(runner)
    compressed = sends_compressed(
        settings.source.compressed_send, runner, plan.dataset, raw=plan.raw
    )
    estimate = estimate_send_size(
        runner, features, plan.snapshot.full_name, send_from, raw=plan.raw, compressed=compressed
    )
    result = replace(result, remote_path=remote_path, estimated_bytes=estimate)
    if dry_run:
        return result
    if store is None:
        raise ValueError("execute_plan needs a store unless dry_run is set")
    cancel.check()
    prepare_archive(settings, store, runner)  # one stat: the run's plan step wrote the marker
    refuse_linked_member(store, plan.member)
    store.makedirs(plan.member)
    check_name_fits(store, plan.member, plan.name.filename)
    with member_lock(settings.lock, store, plan.member, "backup", run) as lock:
        # Another run may have written this member while we waited for its lock.
        archive = read_archive(store, plan.member, plan.name.dataset)
        if why := superseded(plan, archive.files):
            log.info("%s: nothing to send: %s", plan.member, why)
            return replace(result, action=Action.UP_TO_DATE, reason=why, remote_path=None)
        prove_seed_base(store, plan, archive)

        def tick() -> None:
            cancel.check()
            lock.refresh()

        def before_commit() -> None:
            cancel.check()
            lock.verify()

        carries = carried_snapshots(runner, plan, intermediates=not from_bookmark)
        argv = send_argv(
            plan.snapshot.full_name,
            send_from,
            intermediates=not from_bookmark,
            raw=plan.raw,
            compressed=compressed,
        )
        level = settings.compression.effective_level
        threads = settings.compression.threads
        recipients = settings.encryption.recipient_keys() if plan.name.encrypted else []
        identity = StreamIdentity(
            dataset=plan.dataset,
            snapshot_guid=plan.snapshot.guid,
            base_guid=plan.base.guid if plan.base else None,
            send_argv=tuple(argv),
            raw=plan.raw,
            compression=plan.name.compression.value,
            level=level,
            threads=threads,
            recipients=tuple(r.fingerprint for r in recipients),
        )

        kind = plan.name.compression

        def start() -> tuple[Process, Compressor]:
            """The stream from its first byte; a resume may need it twice."""
            return runner.start(argv), compressor(kind, level, threads)

        meter = RateMeter(process_limiter(settings.target.bandwidth_limit), progress)
        stream = stream_to_store(
            *start(),
            store,
            remote_path,
            progress=meter,
            report=StreamProgress(plan.member, plan.name.filename, estimate=estimate),
            tick=tick,
            expected_raw=estimate,
            recipients=recipients,
            resume=Resumable(identity, start),
            limit=meter.limiter,
        )
        sidecar = Sidecar(
            dataset=plan.dataset,
            snapshot=plan.snapshot.name,
            snapshot_guid=plan.snapshot.guid,
            compression=plan.name.compression.value,
            sha256=stream.sha256,
            raw_bytes=stream.raw_bytes,
            stored_bytes=stream.stored_bytes,
            started=stream.started.isoformat(),
            finished=stream.finished.isoformat(),
            tool_version=__version__,
            base=result.base,
            base_guid=plan.base.guid if plan.base else None,
            source_host=source_host(settings),
            snapshot_creation=plan.snapshot.creation or None,
            recipients=tuple(r.fingerprint for r in recipients),
            raw=plan.raw,
            carries=carries,
        )
        commit_backup(
            store,
            plan.member,
            plan.name.filename,
            stream.partial,
            sidecar,
            before_commit=before_commit,
            checkpoints=stream.checkpoints,
        )
        protection = _protect(settings, runner, features, plan)
        _record(settings, runner, store, plan.dataset)
    log.info(
        "%s: %s%s %s stored (%d bytes from %d)",
        plan.member,
        plan.action,
        " raw" if plan.raw else " compressed" if compressed else "",
        remote_path,
        stream.stored_bytes,
        stream.raw_bytes,
    )
    return replace(result, stream=stream, protection=protection, bandwidth=meter.limit_text)


def _protect(settings: Settings, runner: Runner, features: ZfsFeatures, plan: BackupPlan) -> str:
    """Mark the uploaded snapshot as the next base; a failure is reported, not fatal."""
    assert plan.snapshot is not None
    mechanism = choose(settings.protect_base, features)
    tag = mark_tag(str(settings.target.parsed))
    try:
        return protect(runner, mechanism, tag, plan.snapshot, plan.stale_marks)
    except ZfsOffsiteError as exc:
        log.warning("%s: uploaded, but %s", plan.member, exc)
        return f"failed: {exc}"


def _record(settings: Settings, runner: Runner, store: Store, dataset: str) -> None:
    """Record the archive on the source after a commit, whatever protect_base says; a failure
    (a login that may not `zfs set`, an unreadable marker) is a warning: the file is stored."""
    try:
        marker = read_marker(store)
    except (OSError, ZfsOffsiteError) as exc:
        log.warning("%s: stored, but the archive record was not set: %s", dataset, exc)
        return
    if marker is None:
        log.warning("%s: stored, but the archive has no marker to record on the source", dataset)
        return
    prop = record_property(str(settings.target.parsed))
    log.debug("%s: %s", dataset, record_archive(runner, dataset, prop, marker.archive_id))


def backup_member(
    settings: Settings,
    member: Member,
    *,
    force_full: bool = False,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
) -> BackupResult:
    """Plan and run one member's backup on connections of its own."""
    with closing(open_runner(settings)) as runner, closing(open_store(settings.target)) as store:
        prepare_archive(settings, store, runner, write=not dry_run)
        plan, _ = plan_member(settings, store, member, force_full=force_full)
        return execute_plan(settings, runner, store, plan, dry_run=dry_run, progress=progress)
