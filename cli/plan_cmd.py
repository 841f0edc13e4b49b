"""`zfs-offsite plan`: what a backup would send. Read-only, and never imports Prefect."""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Annotated

import typer

from cli import exit_codes, output, startup
from zfs_offsite.errors import ConfigError, ZfsOffsiteError

if TYPE_CHECKING:
    from zfs_offsite.planner import BackupPlan
    from zfs_offsite.settings import Settings

PLAN_COLUMNS = ("member", "action", "base", "target", "file", "reason")


def plan_members(settings: Settings, wanted: list[str], force_full: bool) -> list[BackupPlan]:
    """The core call: discover, pick the wanted members, plan each against the remote index.

    Kept small and alone so the full-cadence work can change what is planned.
    """
    from zfs_offsite.backup import discover_members, plan_member
    from zfs_offsite.store import open_store

    members = discover_members(settings)
    unknown = sorted(set(wanted) - {m.name for m in members})
    if unknown:
        known = ", ".join(m.name for m in members) or "none"
        raise ConfigError(
            f"no member named {', '.join(unknown)} in pool {settings.source.pool} "
            f"(members: {known})"
        )
    chosen = [m for m in members if not wanted or m.name in wanted]
    with closing(open_store(settings.target)) as store:
        return [plan_member(settings, m, store, force_full=force_full)[0] for m in chosen]


def plan_row(p: BackupPlan) -> dict[str, str]:
    return {
        "member": p.member,
        "action": p.action.value,
        "base": p.base.name if p.base else "",
        "target": p.target.name if p.target else "",
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
        plans = plan_members(settings, member or [], force_full)
    except ConfigError as exc:
        output.fail(str(exc), exit_codes.USAGE)
    except ZfsOffsiteError as exc:
        output.fail(str(exc), exit_codes.FAILED)
    rows = [plan_row(p) for p in plans]
    if json_output:
        output.print_json(
            {
                "pool": settings.source.pool,
                "target": str(settings.target.parsed),
                "members": rows,
            }
        )
        return
    title = f"plan: {settings.source.pool} -> {settings.target.parsed}"
    output.print_rows(title, PLAN_COLUMNS, rows)
