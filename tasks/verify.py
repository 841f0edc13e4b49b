"""Prefect task shell over verify: read one member's share of files back and check its chains."""

from __future__ import annotations

from contextlib import closing

from prefect import task
from prefect.cache_policies import NO_CACHE

from zfs_offsite.archive.verify_rotation import MemberRecord
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.verify import MemberVerification, verify_member
from zfs_offsite.settings import Settings


@task(name="verify-member", task_run_name="verify-{member}", cache_policy=NO_CACHE)
def verify(
    settings: Settings,
    member: str,
    mark: bool = True,
    record: MemberRecord | None = None,
    read_all: bool = False,
    record_problem: str = "",
) -> MemberVerification:
    """Read this run's files of a member back (all with `read_all`) and check its chains.

    `record` is the member's verify record as the flow read it (`record_problem`:
    why it could not be read); the result carries the new one, which the flow
    hands to the job's `RecordWriter`.
    """
    with closing(open_store(settings.target)) as store:
        return verify_member(
            settings,
            store,
            member,
            mark=mark,
            record=record,
            read_all=read_all,
            record_problem=record_problem,
        )
