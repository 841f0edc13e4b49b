"""How every job reads a member's directory: the index, judged by the one rule of trust.

`archive/index.py` lists files and reads sidecars; which sidecar-less files
may stand on their name alone is a planning rule (`plan.chains.trust_by_name`)
that the index, below plan/, cannot import. Every job reads through here so
that plan, restore, verify, prune and status report the same files as no link.
"""

from __future__ import annotations

import logging

from zfs_offsite.archive.index import read_member_archive
from zfs_offsite.archive.model import MemberArchive
from zfs_offsite.plan.chains import trust_by_name
from zfs_offsite.remote.store import Store

log = logging.getLogger(__name__)


def read_archive(store: Store, member: str, dataset_part: str | None) -> MemberArchive:
    """`read_member_archive`, with each file that cannot be trusted by name marked and logged."""
    archive = read_member_archive(store, member, dataset_part)
    archive.files = trust_by_name(archive.files)
    for file in archive.files:
        if file.untrusted_name:
            log.warning("%s: %s", member, file.sidecar_problem)
    return archive
