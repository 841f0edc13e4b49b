"""`status`, `plan`, `backup` and `restore` through the real CLI on zfs-fuse (issue 19):
an archive directory no member backs up any more is a warning with what to do, and a
sidecar-less file in a chain the tool writes is named and never built on."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support.cli import Cli
from tests.support.services import Pool
from tests.support.zfsdata import (
    SNAP,
    create_member,
    destroy_dataset,
    guid,
    gzip_send,
    snapshot,
    write_member_data,
)

S2, S3 = "auto-20190807.0200-1w", "auto-20190808.0200-1w"


def test_a_directory_whose_dataset_was_destroyed_is_a_warning_naming_it(
    cli: Cli, archive: Path, module_pool: Pool
) -> None:
    dataset = create_member(module_pool.name, "tru")
    write_member_data(module_pool.mountpoint / "elabfs-tru", 7, megabytes=1)
    snapshot(dataset, SNAP)
    stored = cli("backup", "--member", "tru", ZFS_OFFSITE_PROTECT_BASE="off")  # no hold
    assert stored.code == 0, stored.output
    before = cli("status")
    assert before.code == 0, before.output

    # Destroyed on the NAS: nothing backs up tru/ any more.
    destroy_dataset(dataset)
    text = cli("status")
    assert text.code == 1, text.output
    assert "tru/" in text.stdout and "belongs to no member of pool" in text.stdout
    assert "Traceback" not in text.output

    document = json.loads(cli("status", "--json").stdout)
    assert (document["status"], document["exit_code"]) == ("warning", 1)
    assert [m["status"] for m in document["members"]] == ["ok"] * 3  # the members are fine
    (orphan,) = document["orphaned_directories"]
    assert orphan["directory"] == "tru"
    assert orphan["reason"].startswith(
        f"tru/ on the backup server belongs to no member of pool {module_pool.name} (its "
        "dataset was renamed or destroyed on the NAS, or is no longer selected)"
    )
    assert "zfs-offsite restore tru <new dataset>" in orphan["reason"]
    assert (archive / "tru").is_dir()  # reported, never touched


def test_a_cut_sidecar_less_file_is_named_and_never_built_on(
    cli: Cli, archive: Path, module_pool: Pool
) -> None:
    dataset = f"{module_pool.name}/elabfs-alice"
    mount = module_pool.mountpoint / "elabfs-alice"
    time.sleep(1.1)  # a later night than the tool's first file (whole-second mtimes)
    write_member_data(mount, 11, megabytes=1)
    snapshot(dataset, S2)
    junk = archive / "alice" / f"elabfs-alice@{SNAP}.to.elabfs-alice@{S2}.gz"
    gzip_send(["zfs", "send", "-i", f"{dataset}@{SNAP}", f"{dataset}@{S2}"], junk)
    with junk.open("r+b") as handle:  # an old cron job, cut short: no sidecars
        handle.truncate(junk.stat().st_size // 2)

    status = cli("status", "--json")
    alice = json.loads(status.stdout)["members"][0]
    assert alice["member"] == "alice" and alice["status"] == "warning", status.output
    assert alice["newest_archived"] == SNAP  # not S2
    (line,) = alice["untrusted_files"]
    assert line in alice["reasons"]
    assert line.startswith(f"{junk.name} has no .sha256 or .json but was written after")
    assert line.endswith("then move the file out of the member directory: no restore point uses it")

    write_member_data(mount, 12, megabytes=1)
    snapshot(dataset, S3)
    planned = json.loads(cli("plan", "--member", "alice", "--json").stdout)["members"][0]
    assert (planned["action"], planned["base"], planned["target"]) == ("incremental", SNAP, S3)
    assert line in planned["reason"]

    done = cli("backup", "--member", "alice")
    assert done.code == 0, done.output
    sent = archive / "alice" / f"elabfs-alice@{SNAP}.to.elabfs-alice@{S3}.zst"
    assert sent.is_file() and junk.is_file()

    destination = f"{module_pool.name}/tru-restored"
    restored = cli("restore", "alice", destination)
    assert restored.code == 0, restored.output
    assert guid(f"{destination}@{S3}") == guid(f"{dataset}@{S3}")
