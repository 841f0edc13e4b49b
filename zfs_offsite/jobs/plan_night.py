"""The night's backup planning: discover, choose the members, plan each, stagger the fulls.

`zfs-offsite plan` and the backup flow both call `plan_night`, so what the
command shows is what the night does: the same member filter (and its one
message), the same handling of datasets that cannot be members, the same
quota of new chains counted over every member, not over a selection. Only
how the steps run differs, and the callers say it: the flow discovers and
plans in Prefect tasks (with retries, over a few connections); the command
calls the core directly on one connection and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from zfs_offsite.archive.names import check_member_name
from zfs_offsite.errors import ConfigError, ZfsOffsiteError
from zfs_offsite.jobs.backup import plan_member, require_members
from zfs_offsite.plan.backup import BackupPlan, apply_full_quota
from zfs_offsite.plan.cadence import full_quota
from zfs_offsite.remote.store import Store
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.members import Excluded, Member, Selection

# Plans for the members it is given, and per member it could not plan its one-line error.
PlanEach = Callable[[list[Member]], tuple[list[BackupPlan], dict[str, str]]]


@dataclass(frozen=True)
class NightPlan:
    """What a night sends, before anything is sent."""

    members: list[Member]  # the members chosen, in discovery order (unusable ones too)
    plans: list[BackupPlan]  # in member order, after the quota of new chains
    failed: dict[str, str] = field(default_factory=dict)  # member -> why it has no plan
    excluded: list[Excluded] = field(default_factory=list)  # left out on purpose (a full night)


def choose_members(
    members: Sequence[Member], wanted: Sequence[str], pool: str, where: str = ""
) -> list[Member]:
    """`wanted` out of `members` (all if empty), the one filter of the backup and `plan`.

    A name no member can have, or no member has, is a ConfigError (bad input,
    exit 2) in one line; `where` says where the names came from (e.g.
    `parameter members:`), the CLI's option having checked its own.
    """
    for name in wanted:
        check_member_name(name, where or "member")
    unknown = sorted(set(wanted) - {m.name for m in members})
    if unknown:
        known = ", ".join(m.name for m in members) or "none"
        said = f"{where} " if where else ""
        raise ConfigError(
            f"{said}no member named {', '.join(unknown)} in pool {pool} (members: {known})"
        )
    return [m for m in members if not wanted or m.name in wanted]


def plan_each(
    settings: Settings,
    store: Store,
    members: Sequence[Member],
    *,
    force_full: bool = False,
    errors: tuple[type[Exception], ...] = (ZfsOffsiteError,),
) -> tuple[list[BackupPlan], dict[str, str]]:
    """Plan each member over one store connection; one member's failure is its own.

    Returns the plans in member order and, per member whose planning raised
    one of `errors`, its message (anything else propagates). The flow's batch
    passes `(Exception,)`: it plans such a member again in a task of its own.
    """
    plans: list[BackupPlan] = []
    failed: dict[str, str] = {}
    for member in members:
        try:
            plans.append(plan_member(settings, store, member, force_full=force_full)[0])
        except errors as exc:
            failed[member.name] = str(exc)
    return plans, failed


def plan_night(
    settings: Settings,
    wanted: Sequence[str],
    discover: Callable[[], Selection],
    plan: PlanEach,
    *,
    where: str = "",
) -> NightPlan:
    """The night's plan: discover, choose `wanted` (all if empty), plan, apply the quota.

    `discover` lists the selection (none at all is an error, never a quiet
    night); `plan` plans the usable members (a dataset that cannot be a member
    fails alone, with its one-line error, and is never planned). The quota of
    new chains is counted over every member, so a run over some members
    staggers fulls as the whole night would.
    """
    selection = discover()
    require_members(settings, selection)
    chosen = choose_members(selection.members, wanted, settings.source.pool, where)
    failed = {m.name: m.error for m in chosen if m.error is not None}
    plans, unplanned = plan([m for m in chosen if m.error is None])
    failed.update(unplanned)
    quota = full_quota(settings.full, len(selection.members))
    return NightPlan(
        chosen,
        apply_full_quota(plans, quota),
        failed,
        [] if wanted else selection.excluded,
    )
