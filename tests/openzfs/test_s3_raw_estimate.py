"""A raw send of a natively encrypted dataset on real OpenZFS 2.3 (pull mode over SSH) to
the project's RGW: its parts sized from `zfs send -nP`'s estimate, then verified and
received back raw.

zfs-fuse has neither native encryption nor a send estimate, so this runs only against
the VM (conftest.py) and is skipped, with the reason printed, when the VM is down. The
RGW is the shared plugin's (tests/support/rgw_fixtures.py), on 127.0.0.1 on this host.

The part family is scaled down so a 6 MiB dataset shows the choice: base parts of
5 MiB (S3's smallest), the base family's planned part one of 5 MiB, a larger first
part's one. An estimate of 5-8 MiB x 1.25 then fits no base part but one of 10 MiB.
"""

from __future__ import annotations

import logging
import re
from contextlib import closing
from pathlib import Path

import pytest

from tests.openzfs.test_raw_sends import encrypted_dataset, prop
from tests.support.openzfs_vm import VM_CACHE, VM_PORT, add_snapshot
from tests.support.rgw import Rgw
from zfs_offsite.connect import open_store
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.restore import restore_member, snapshot_guid
from zfs_offsite.jobs.verify import Verdict, verify_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.remote import s3_parts
from zfs_offsite.settings import Settings, load_settings
from zfs_offsite.zfs.runner import Runner

pytestmark = [pytest.mark.openzfs_vm, pytest.mark.usefixtures("aws_env")]
MiB = 1 << 20


@pytest.fixture
def scaled_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_parts, "BASE_PART", 5 * MiB)
    monkeypatch.setattr(s3_parts, "GROW_AFTER", 1)
    monkeypatch.setattr(s3_parts, "DOUBLED_UNTIL", 1)
    monkeypatch.setattr(s3_parts, "PLANNED", 1)


def s3_settings(pool: str, known_hosts: Path, rgw: Rgw, bucket: str) -> Settings:
    """Pull mode from the VM, the archive in `bucket` on the RGW."""
    return load_settings(
        source={
            "pool": pool,
            "ssh_url": f"ssh://root@127.0.0.1:{VM_PORT}",
            "key_file": str(VM_CACHE / "id_ed25519"),
            "known_hosts": str(known_hosts),
        },
        target={
            "url": f"s3://{bucket}/lab",
            "s3": {"endpoint_url": rgw.endpoint, "region": rgw.region},
            "timeout": 60,
        },
    )


@pytest.mark.usefixtures("scaled_parts")
def test_a_raw_send_goes_to_s3_in_parts_from_its_estimate_verifies_and_restores_raw(
    vm: tuple[Runner, str, Path], rgw: Rgw, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    runner, pool, known_hosts = vm
    dataset, restored = f"{pool}/elabfs-kim", f"{pool}/restored"
    encrypted_dataset(runner, dataset)
    add_snapshot(runner, dataset, "s1", 6)
    settings = s3_settings(pool, known_hosts, rgw, bucket)
    (member,) = discover_members(settings)
    with caplog.at_level(logging.INFO, logger="zfs_offsite.remote.s3"):
        full = backup_member(settings, member)
    assert (full.action, full.raw) == (Action.FULL, True)
    estimate = full.estimated_bytes
    assert estimate is not None and 5 * MiB < estimate < 8 * MiB  # `send -nP -w`
    said = re.findall(r"parts of (\d+) MiB from a size estimate of (\d+) bytes", caplog.text)
    assert said == [("10", str(estimate))]  # the estimate chose 10 MiB parts, not 5
    key = "lab/kim/elabfs-kim@s1.zst"
    head = rgw.client().head_object(Bucket=bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-1")  # one part (5 MiB parts: two)

    with closing(open_store(settings.target)) as store:
        checked = verify_member(settings, store, "kim", read_all=True)
        result = restore_member(settings, runner, store, "kim", restored)
    assert checked.verdict is Verdict.OK and [f.filename for f in checked.files] == [
        "elabfs-kim@s1.zst"
    ]
    assert result.needs_key
    guid = snapshot_guid(runner, f"{restored}@s1")
    assert guid is not None and guid == snapshot_guid(runner, f"{dataset}@s1")
    assert prop(runner, "encryption", restored) == "aes-256-gcm"
    assert prop(runner, "keystatus", restored) == "unavailable"  # received raw: still locked
