"""The nightly flow holds the cadence's fulls to the quota (real Prefect, zfs-fuse, sshd)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.plan_cmd import plan_members
from flows.backup import backup_flow
from tests.support.flow_runs import sftp_env
from tests.support.services import Pool, SshServer
from tests.support.zfsdata import MEMBERS, snapshot
from zfs_offsite.errors import ConfigError
from zfs_offsite.settings import load_settings

pytestmark = pytest.mark.integration

S1, S2, S3 = "auto-20190806.0200-1w", "auto-20190807.0200-1w", "auto-20190808.0200-1w"


def backdate(archive: Path, member: str, filename: str, when: datetime) -> None:
    """Rewrite a sidecar's times: as if this tool had uploaded the file at `when`."""
    sidecar = archive / member / f"{filename}.json"
    record = json.loads(sidecar.read_text())
    record["started"] = when.isoformat()
    record["finished"] = (when + timedelta(minutes=5)).isoformat()
    sidecar.write_text(json.dumps(record))


def night(pool: Pool, snap: str) -> dict[str, tuple[str, str]]:
    """Every member takes a snapshot, the flow runs: member -> (action, reason)."""
    for name in MEMBERS:
        snapshot(f"{pool.name}/elabfs-{name}", snap)
    outcomes = backup_flow()
    assert all(o.error is None and o.result is not None for o in outcomes)
    return {o.member: (o.result.action.value, o.result.reason) for o in outcomes if o.result}


def test_flow_starts_at_most_the_quota_of_new_chains_a_night(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    env = sftp_env(source_pool, sftp_dir, sshd) | {"ZFS_OFFSITE_FULL__AFTER_DAYS": "30"}
    flow_env(env)
    first = backup_flow()
    assert [o.result.action.value for o in first if o.result] == ["full"] * 3  # nothing to extend

    # A month on: every chain is due; bob's the oldest. Three members / 30 days: one a night.
    month_ago = datetime.now(UTC) - timedelta(days=31)
    for name in MEMBERS:
        when = month_ago - timedelta(days=4) if name == "bob" else month_ago
        backdate(sftp_dir, name, f"elabfs-{name}@{S1}.zst", when)
    tonight = night(source_pool, S2)
    assert tonight["bob"] == (
        "full",
        "full due now (1st of 1 tonight): the chain is 35.0 days old (limit 30)",
    )
    for name in ("alice", "carol"):
        assert tonight[name] == (
            "incremental",
            f"full due, deferred: quota of 1 reached tonight; newest archived snapshot is {S1}",
        )
    assert (sftp_dir / "bob" / f"elabfs-bob@{S2}.zst").is_file()
    assert not (sftp_dir / "alice" / f"elabfs-alice@{S2}.zst").exists()
    assert (sftp_dir / "alice" / f"elabfs-alice@{S1}.to.elabfs-alice@{S2}.zst").is_file()

    # The next night: alice and carol are equally overdue, the name decides; bob is new.
    tomorrow = night(source_pool, S3)
    assert tomorrow["alice"][0] == "full" and tomorrow["carol"][0] == "incremental"
    assert tomorrow["carol"][1].startswith("full due, deferred: quota of 1 reached tonight")
    assert tomorrow["bob"] == ("incremental", f"newest archived snapshot is {S2}; full due in 30 d")


def flow_plans(members: list[str]) -> list[tuple[str, str, str, str, str]]:
    """The backup flow's dry run: (member, action, base, target, reason) in member order."""
    return [
        (
            o.member,
            o.result.action.value,
            o.result.base or "",
            o.result.snapshot or "",
            o.result.reason,
        )
        for o in backup_flow(members=members, dry_run=True)
        if o.result is not None
    ]


def command_plans(members: list[str]) -> list[tuple[str, str, str, str, str]]:
    """`zfs-offsite plan`'s rows, from the function the command prints."""
    plans, failed, _, _ = plan_members(load_settings(), members, force_full=False)
    assert failed == {}
    return [
        (
            p.member,
            p.action.value,
            p.base.name if p.base else "",
            p.snapshot.name if p.snapshot else "",
            p.reason,
        )
        for p in plans
    ]


def test_plan_and_the_backup_flow_plan_the_same_night(
    source_pool: Pool, sftp_dir: Path, sshd: SshServer, flow_env: Callable[..., None]
) -> None:
    """`plan` shows what the night does: the same filter, plans and quota of new chains."""
    flow_env(sftp_env(source_pool, sftp_dir, sshd) | {"ZFS_OFFSITE_FULL__AFTER_DAYS": "30"})
    backup_flow()
    month_ago = datetime.now(UTC) - timedelta(days=31)
    for name in MEMBERS:  # every chain due, bob's the oldest: one full tonight (3 / 30 days)
        when = month_ago - timedelta(days=4) if name == "bob" else month_ago
        backdate(sftp_dir, name, f"elabfs-{name}@{S1}.zst", when)
        snapshot(f"{source_pool.name}/elabfs-{name}", S2)
    night = command_plans([])
    assert [(m, action) for m, action, *_ in night] == [
        ("alice", "incremental"),
        ("bob", "full"),
        ("carol", "incremental"),
    ]
    assert flow_plans([]) == night
    # Some members: the quota still counts every member, in both.
    some = command_plans(["alice", "carol"])
    assert [(m, action) for m, action, *_ in some] == [("alice", "full"), ("carol", "incremental")]
    assert flow_plans(["alice", "carol"]) == some
    # A member no one has: the same line from both, the flow's naming its parameter.
    with pytest.raises(ConfigError) as command:
        plan_members(load_settings(), ["zed"], force_full=False)
    said = f"no member named zed in pool {source_pool.name} (members: alice, bob, carol)"
    assert str(command.value) == said
    state = backup_flow(members=["zed"], dry_run=True, return_state=True)
    assert str(state.result(raise_on_failure=False)) == f"parameter members: {said}"
