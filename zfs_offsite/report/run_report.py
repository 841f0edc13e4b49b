"""The run report: one row per member, a markdown summary, and the names they go under.

Pure functions so the Prefect artifact and the CLI table show the same figures;
`slug` makes the names Prefect accepts (artifact keys, the send concurrency limit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zfs_offsite.archive.model import ArchiveFile
from zfs_offsite.jobs.backup import BackupResult
from zfs_offsite.jobs.drill import DrillRecord
from zfs_offsite.jobs.verify import DEFERRED, MemberVerification
from zfs_offsite.plan.retention import PrunePlan

FAILED = "failed"


@dataclass(frozen=True)
class MemberOutcome:
    """A member's result, or the one-line error that stopped it."""

    member: str
    result: BackupResult | None = None
    error: str | None = None
    cached: bool = False  # the upload came back from this run's cache (a retried run)

    @property
    def action(self) -> str:
        if self.error is not None or self.result is None:
            return FAILED
        suffix = (
            " (dry run)"
            if self.result.dry_run
            and self.result.action.value
            in (
                "full",
                "incremental",
            )
            else ""
        )
        return self.result.action.value + suffix


COLUMNS = (
    "member",
    "action",
    "base",
    "target",
    "raw_bytes",
    "stored_bytes",
    "resumed_mb",
    "ratio",
    "seconds",
    "mb_per_s",
    "stored_mb_per_s",
    "bandwidth_limit",
    "upload_tries",
    "earlier_tries",
    "sha256",
    "remote_path",
    "protected",
    "error",
    "started",
    "finished",
    "base_guid",
    "target_guid",
    "source",
)

UPLOADED_NOW = "uploaded now"
FROM_CACHE = "from cache"


def source_of(outcome: MemberOutcome) -> str:
    """Whether a row's figures come from an upload of this attempt or an earlier one's cache."""
    r = outcome.result
    if r is None or r.stream is None:
        return ""
    return FROM_CACHE if outcome.cached else UPLOADED_NOW


def _guid(value: int | None) -> str:
    return str(value) if value is not None else ""  # text: JSON readers lose 64-bit integers


def row(outcome: MemberOutcome) -> dict[str, object]:
    """One table row; figures are empty where nothing was sent."""
    r = outcome.result
    stream = r.stream if r else None
    return {
        "member": outcome.member,
        "action": outcome.action,
        "base": (r.base if r else None) or "",
        "target": (r.snapshot if r else None) or "",
        "raw_bytes": stream.raw_bytes if stream else "",
        "stored_bytes": stream.stored_bytes if stream else "",
        # stored MB an earlier attempt had sent and this one checked, not sent again
        "resumed_mb": f"{stream.resumed_bytes / 1e6:.1f}"
        if stream and stream.resumed_bytes
        else "",
        "ratio": f"{r.ratio:.2f}" if r and r.ratio else "",
        "seconds": f"{stream.seconds:.1f}" if stream else "",
        # the rates are of the bytes sent, over the time spent sending (see BackupResult)
        "mb_per_s": f"{r.mb_per_second:.1f}" if r and r.mb_per_second else "",
        "stored_mb_per_s": (
            f"{r.stored_mb_per_second:.2f}" if r and r.stored_mb_per_second is not None else ""
        ),
        "bandwidth_limit": (r.bandwidth if r else "") or "",
        "upload_tries": 1 + len(r.earlier_tries) if stream and r else "",
        "earlier_tries": list(r.earlier_tries) if r else [],
        "sha256": stream.sha256 if stream else "",
        "remote_path": (r.remote_path if r else None) or "",
        "protected": (r.protection if r else None) or "",
        "error": outcome.error or "",
        "started": stream.started.isoformat() if stream else "",
        "finished": stream.finished.isoformat() if stream else "",
        "base_guid": _guid(r.base_guid) if r else "",
        "target_guid": _guid(r.snapshot_guid) if r else "",
        "source": source_of(outcome),
    }


def result_line(outcome: MemberOutcome) -> str:
    """A member's result in one log line: action, base → snapshot, bytes, time, sha256, file."""
    r = outcome.result
    if outcome.error is not None or r is None:
        return f"{outcome.member}: failed: {outcome.error}"
    base = r.base or "(none)"
    line = f"{outcome.member}: {outcome.action} {base} → {r.snapshot or '(none)'}"
    if r.stream is not None:
        s = r.stream
        line += (
            f", {s.raw_bytes} bytes raw / {s.stored_bytes} stored"
            + (f" ({s.resumed_bytes} resumed, not sent again)" if s.resumed_bytes else "")
            + f", {s.seconds:.1f} s, "
            f"sha256 {s.sha256}, file {r.remote_path}, {source_of(outcome)}"
        )
    elif r.remote_path:
        line += f", file {r.remote_path}"
    return line


def summary_markdown(
    host: str, outcomes: list[MemberOutcome], notes: list[str] | None = None
) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    stored = sum(o.result.stream.stored_bytes for o in outcomes if o.result and o.result.stream)
    lines = [
        f"# Backup of {host}",
        "",
        *[line for note in notes or [] for line in (note, "")],
        ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "no members",
        "",
        f"Stored this run: {stored / 1e6:.1f} MB",
        *upload_rate_lines(outcomes),
    ]
    failed = [o for o in outcomes if o.action == FAILED]
    if failed:
        lines += ["", "## Failed", ""] + [f"- **{o.member}**: {o.error}" for o in failed]
    return "\n".join(lines) + "\n"


def upload_rate_lines(outcomes: list[MemberOutcome]) -> list[str]:
    """The rate on the link over the run's uploads together, and the limit it ran under.

    Streams in parallel share one limit, so the figure to hold against it is all the
    stored bytes sent over the time from the first upload's first byte sent to the last
    one's end. Bytes a resume found on the server were not sent: they are named apart,
    and the time spent checking them is not sending time.
    """
    now = [o for o in outcomes if o.result and o.result.stream and not o.cached]
    streams = [o.result.stream for o in now if o.result and o.result.stream]
    if not streams:
        return []
    sent = sum(s.sent_bytes for s in streams)
    resumed = sum(s.resumed_bytes for s in streams)
    first = min(s.sending_started or s.started for s in streams)
    seconds = max((max(s.finished for s in streams) - first).total_seconds(), 1e-6)
    limits = sorted({o.result.bandwidth for o in now if o.result and o.result.bandwidth})
    limit = f" (bandwidth limit {'; '.join(limits)})" if limits else " (no bandwidth limit)"
    rate = sent / 1e6 / seconds
    line = f"Uploaded: {sent / 1e6:.1f} MB in {seconds:.0f} s, {rate:.2f} MB/s{limit}"
    if resumed:
        line += f"; {resumed / 1e6:.1f} MB resumed (stored by an earlier attempt, not sent again)"
    return ["", line]


def slug(*parts: str) -> str:
    """`parts` joined as lowercase letters, digits and single `-`s: a name Prefect accepts."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and `-` only)."""
    return slug(*parts)


def send_limit_name(host: str) -> str:
    """The global concurrency limit that caps sends from `host` across runs: `zfs-send-<host>`."""
    return slug("zfs-send", host)


def verification_rows(result: MemberVerification) -> list[dict[str, object]]:
    """One row per stored file: what verify found, whether it read the file in full now
    (and why) or deferred it, and when it last read it in full and found it sound."""
    return [
        {
            "member": result.member,
            "file": f.filename,
            "verdict": f.verdict.value,
            "read": f.read if f.read in ("", DEFERRED) else f"in full: {f.read}",
            "last_read": f.last_read or "never",
            "stored_bytes": f.stored_bytes,
            "raw_bytes": f.raw_bytes,
            "detail": f.detail,
        }
        for f in result.files
    ]


def _read_and_deferred(results: list[MemberVerification]) -> tuple[int, int, int, int]:
    """Files and stored bytes read in full this run, then files and bytes deferred."""
    read = [f for r in results for f in r.files if f.read not in ("", DEFERRED)]
    deferred = [f for r in results for f in r.files if f.read == DEFERRED]
    return (
        len(read),
        sum(f.stored_bytes for f in read),
        len(deferred),
        sum(f.stored_bytes for f in deferred),
    )


def verify_totals(results: list[MemberVerification]) -> str:
    """What a verify run read, in one line: files and MB read in full, and deferred."""
    read, read_bytes, deferred, deferred_bytes = _read_and_deferred(results)
    return (
        f"{read} file(s) read in full ({read_bytes / 1e6:.1f} MB), "
        f"{deferred} deferred to a later run ({deferred_bytes / 1e6:.1f} MB)"
    )


def verification_summary(
    result: MemberVerification | None, member: str, error: str | None
) -> dict[str, object]:
    """One row per member: its verdict and file counts."""
    if result is None:
        return {
            "member": member,
            "verdict": FAILED,
            "files": "",
            "read_in_full": "",
            "deferred": "",
            "stored_bytes": "",
            "detail": error or "",
        }
    read, _, deferred, _ = _read_and_deferred([result])
    return {
        "member": member,
        "verdict": result.verdict.value,
        "files": len(result.files),
        "read_in_full": read,
        "deferred": deferred,
        "stored_bytes": sum(f.stored_bytes for f in result.files),
        "detail": result.detail,
    }


def drill_row(
    member: str, record: DrillRecord | None, error: str | None, drilled: bool
) -> dict[str, object]:
    """One row per member: this run's drill (if it had its turn) and when it was last proven."""
    return {
        "member": member,
        "this_run": (FAILED if error else "restored") if drilled else "not its turn",
        "last_proven": record.when if record else "never",
        "snapshot": record.snapshot if record else "",
        "guid": str(record.guid) if record and record.guid is not None else "",
        "guid_checked_against": record.guid_checked_against if record else "",
        "seconds": record.seconds if record else "",
        "mb_per_s": record.mb_per_second if record else "",
        "error": error or "",
    }


def prune_summary(plan: PrunePlan | None, member: str, error: str | None) -> dict[str, object]:
    """One row per member: restore points kept and dropped, files deleted, bytes freed."""
    if plan is None:
        return {
            "member": member,
            "kept_points": "",
            "dropped_points": "",
            "deleted_files": "",
            "bytes_freed": "",
            "left_alone": "",
            "error": error or "",
        }
    return {
        "member": member,
        "kept_points": len(plan.kept),
        "dropped_points": len(plan.dropped),
        "deleted_files": len(plan.delete) + len(plan.stale_partials),
        "bytes_freed": plan.bytes_freed,
        "left_alone": len(plan.untouched) + len(plan.ignored),
        "error": "",
    }


def prune_file_rows(plan: PrunePlan, dry_run: bool) -> list[dict[str, object]]:
    """One row per file: kept, deleted (or would be), or left alone and why."""
    verb = "would delete" if dry_run else "deleted"
    why_kept = plan.kept_reasons
    rows: list[tuple[str, str, int | str]] = [
        (f.filename, f"keep ({why_kept[f.filename]})" if f.filename in why_kept else "keep", f.size)
        for f in plan.keep
    ]
    rows += [(f.filename, verb, f.size) for f in plan.delete]
    rows += [(f.filename, f"left alone: {_why_untouched(f)}", f.size) for f in plan.untouched]
    why = plan.partial_reasons
    rows += [(p.name, f"{verb} ({why[p.name]})", p.size) for p in plan.stale_partials]
    rows += [(p.name, f"left alone: {why[p.name]}", p.size) for p in plan.resumable_partials]
    rows += [(name, f"left alone: {why}", "") for name, why in plan.ignored.items()]
    return [{"member": plan.member, "file": n, "decision": d, "bytes": b} for n, d, b in rows]


def _why_untouched(file: ArchiveFile) -> str:
    if file.corrupt is not None:
        return f"marked corrupt ({file.corrupt})"
    if not file.identified:
        return f"{file.sidecar_problem}"
    return "in no restorable chain"
