"""`zfs-offsite plan`: what a backup would send. Read-only, and never imports Prefect."""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Annotated

import typer

from cli import exit_codes, output, startup
from zfs_offsite.errors import ConfigError, ZfsOffsiteError

if TYPE_CHECKING:
    from zfs_offsite.plan.backup import BackupPlan
    from zfs_offsite.settings import Settings
    from zfs_offsite.zfs.members import Excluded

PLAN_COLUMNS = ("member", "action", "base", "target", "file", "reason")


def plan_members(
    settings: Settings, wanted: list[str], force_full: bool
) -> tuple[list[BackupPlan], dict[str, str], list[Excluded], str | None]:
    """Plan like the backup flow (`jobs/plan_night.plan_night`), on one connection.

    Returns the plans, per member that cannot be planned its one-line error, the
    datasets below the members that are left out (listed, never silent), and a note
    on the archive root (missing, empty, a seed archive not yet adopted): plan writes
    nothing, so it plans on, and says what backup will do about it. Where the backup
    would refuse the root (missing or empty, but the members were backed up there:
    the disk is not mounted), every member fails with that refusal instead.
    """
    from zfs_offsite.archive.identity import root_note
    from zfs_offsite.connect import open_store
    from zfs_offsite.jobs.backup import discover_selection, root_refusal
    from zfs_offsite.jobs.plan_night import plan_each, plan_night
    from zfs_offsite.zfs.members import Member

    notes: list[str | None] = []

    def plan(members: list[Member]) -> tuple[list[BackupPlan], dict[str, str]]:
        with closing(open_store(settings.target)) as store:
            if members and (refused := root_refusal(settings, store, None, members)):
                return [], {m.name: refused for m in members}  # as the backup would fail them
            notes.append(root_note(store))
            return plan_each(settings, store, members, force_full=force_full)

    night = plan_night(settings, wanted, lambda: discover_selection(settings), plan)
    failed = {name: output.one_line(error) for name, error in night.failed.items()}
    return night.plans, failed, night.excluded, notes[0] if notes else None


def plan_row(p: BackupPlan) -> dict[str, object]:
    return {
        "member": p.member,
        "action": p.action.value,
        "base": p.base.name if p.base else "",
        "target": p.snapshot.name if p.snapshot else "",
        "file": p.filename or "",
        "reason": p.reason,
    }


def plan(
    config: startup.ConfigOption = None,
    member: startup.MembersOption = None,
    force_full: Annotated[bool, typer.Option(help="Plan full streams.")] = False,
    json_output: startup.JsonOption = False,
) -> None:
    """Show what a backup would send; nothing is sent or written."""
    settings = startup.load(config)
    try:
        plans, failed, excluded, note = plan_members(settings, member or [], force_full)
    except ConfigError as exc:
        output.fail(str(exc), exit_codes.USAGE)
    except ZfsOffsiteError as exc:
        output.fail(str(exc), exit_codes.FAILED)
    rows: list[dict[str, object]] = [plan_row(p) for p in plans] + [
        {"member": name, "action": "failed", "reason": error} for name, error in failed.items()
    ]
    left_out = [{"dataset": e.dataset, "kind": e.kind, "reason": e.reason} for e in excluded]
    if json_output:
        output.print_json(
            {
                "pool": settings.source.pool,
                "target": str(settings.target.parsed),
                "note": note,
                "members": rows,
                "not_backed_up": left_out,
            }
        )
    else:
        title = f"plan: {settings.source.pool} -> {settings.target.parsed}"
        output.print_rows(
            title,
            PLAN_COLUMNS,
            rows
            + [{"member": e["dataset"], "action": "skip", "reason": e["reason"]} for e in left_out],
        )
        if note:
            output.info(f"note: {note}")
    if failed:
        raise typer.Exit(exit_codes.FAILED)
