"""age-encrypted backups on real zfs-fuse and the real sshd.

Member `erin` is backed up encrypted to two recipients (an age key and an SSH
ed25519 key): a full, an `-I` incremental, then a plain incremental after
encryption is turned off, so its chain mixes both. The NAS side holds only
public keys; restores read with one of the identities, by the tool or by
`age -d | zstd -d | zfs receive`.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import Pool
from tests.support.settings_edit import with_section
from tests.support.zfsdata import create_member, guid, snapshot, write_member_data
from zfs_offsite.connect import open_runner, open_store
from zfs_offsite.errors import ChainError, IntegrityError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.jobs.drill import drill_member
from zfs_offsite.jobs.restore import (
    dataset_exists,
    download_chain,
    receive_commands,
    restore_member,
)
from zfs_offsite.jobs.verify import SEALED, Verdict, verify_member
from zfs_offsite.keys.identities import IdentityError
from zfs_offsite.keys.keygen import write_identity_file
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import EncryptionSettings, Settings

pytestmark = pytest.mark.integration

S = ["auto-20190806.0200-1w", "auto-20190807.0200-1w", "auto-20190808.0200-1w", "auto-20190809"]
FULL = f"elabfs-erin@{S[0]}.zst.age"
INCREMENTAL = f"elabfs-erin@{S[0]}.to.elabfs-erin@{S[2]}.zst.age"
PLAIN = f"elabfs-erin@{S[2]}.to.elabfs-erin@{S[3]}.zst"


@dataclass
class Sealed:
    pool: Pool
    dataset: str
    member_dir: Path
    settings: Settings  # encrypting, no identity: what the NAS holds
    age_key: Path  # identity 1 (zfs-offsite keygen)
    ssh_key: Path  # identity 2 (an SSH ed25519 private key)
    recipients: list[str]  # the fingerprints the sidecars must record
    marker: bytes


def write_marked(directory: Path, seed: int, marker: bytes) -> None:
    """Member data with a known string inside, amid random bytes zstd leaves as literals."""
    write_member_data(directory, seed, 1)
    noise = secrets.token_bytes(4096)
    (directory / f"marked-{seed}.bin").write_bytes(noise + marker + noise + marker)


def with_encryption(settings: Settings, **fields: object) -> Settings:
    return settings.model_copy(update={"encryption": EncryptionSettings(**fields)})  # type: ignore[arg-type]


@pytest.fixture
def sealed(
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> Sealed:
    keys = tmp_path / "keys"
    keys.mkdir()
    age_key = keys / "restore-key.txt"
    age_public = write_identity_file(age_key)
    ssh_key = keys / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)], check=True)
    ssh_public = (keys / "id_ed25519.pub").read_text().strip()
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(keys / "id_ed25519.pub")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    pool = pool_factory()
    dataset = create_member(pool.name, "erin")
    marker = f"zfs-offsite-plaintext-marker-{secrets.token_hex(8)}".encode()
    plain = settings_for(pool, sftp_dir)
    settings = with_encryption(plain, recipients=[age_public, ssh_public])

    def backup(settings: Settings) -> Action:
        (member,) = discover_members(settings)
        return backup_member(settings, member).action

    write_marked(pool.mountpoint / "elabfs-erin", 0, marker)
    snapshot(dataset, S[0])
    assert backup(settings) is Action.FULL
    for n in (1, 2):
        write_marked(pool.mountpoint / "elabfs-erin", n, marker)
        snapshot(dataset, S[n])
    assert backup(settings) is Action.INCREMENTAL
    write_marked(pool.mountpoint / "elabfs-erin", 3, marker)
    snapshot(dataset, S[3])
    assert backup(plain) is Action.INCREMENTAL  # encryption off: the chain goes on, plain
    return Sealed(
        pool,
        dataset,
        sftp_dir / "erin",
        settings,
        age_key,
        ssh_key,
        [age_public, fingerprint],
        marker,
    )


def restore(settings: Settings, destination: str, **kwargs: object) -> object:
    with closing(open_runner(settings)) as runner, closing(open_store(settings.target)) as st:
        return restore_member(settings, runner, st, "erin", destination, **kwargs)  # type: ignore[arg-type]


def test_stored_bytes_are_encrypted_to_both_recipients(sealed: Sealed) -> None:
    names = sorted(p.name for p in sealed.member_dir.iterdir())
    files = [FULL, INCREMENTAL, PLAIN]
    assert names == sorted(n for f in files for n in (f, f + ".json", f + ".sha256"))
    sums = subprocess.run(
        ["sha256sum", "-c", *[f + ".sha256" for f in files]],
        cwd=sealed.member_dir,
        capture_output=True,
        text=True,
    )
    assert sums.returncode == 0, sums.stdout + sums.stderr  # the checksum is of stored bytes
    for name in (FULL, INCREMENTAL):
        stored = (sealed.member_dir / name).read_bytes()
        assert stored.startswith(b"age-encryption.org/v1\n")
        assert sealed.marker not in stored
        meta = json.loads((sealed.member_dir / (name + ".json")).read_text())
        assert meta["recipients"] == sealed.recipients
        assert meta["stored_bytes"] == len(stored)
        secret = sealed.age_key.read_text().splitlines()[-1]
        assert secret.encode() not in stored and secret not in json.dumps(meta)
    # The control: the same data, stored plain, shows the marker; decrypted, so does the age file.
    assert sealed.marker in (sealed.member_dir / PLAIN).read_bytes()
    opened = subprocess.run(
        ["age", "-d", "-i", str(sealed.ssh_key), str(sealed.member_dir / FULL)],
        check=True,
        capture_output=True,
    ).stdout
    stream = subprocess.run(["zstd", "-dc"], input=opened, check=True, capture_output=True).stdout
    assert sealed.marker in stream
    assert "recipients" not in json.loads((sealed.member_dir / (PLAIN + ".json")).read_text())


def test_restore_with_the_tool_gives_the_source_guids(
    sealed: Sealed, pool_factory: Callable[[], Pool]
) -> None:
    target = pool_factory()
    destination = f"{target.name}/erin"
    keyed = with_section(sealed.settings, "encryption", identity_file=sealed.age_key)
    result = restore(keyed, destination)
    assert [f.filename for f in result.files] == [FULL, INCREMENTAL, PLAIN]  # type: ignore[attr-defined]
    for snap in S:
        assert guid(f"{destination}@{snap}") == guid(f"{sealed.dataset}@{snap}")
    # The drill reads the same way, with the SSH identity this time.
    (member,) = discover_members(sealed.settings)
    with (
        closing(open_runner(sealed.settings)) as runner,
        closing(open_store(sealed.settings.target)) as store,
    ):
        by_ssh_key = with_section(sealed.settings, "encryption", identity_file=sealed.ssh_key)
        drilling = with_section(by_ssh_key, "drill", scratch_dataset=f"{target.name}/drill")
        record = drill_member(drilling, runner, store, member)
    assert record.guid == guid(f"{sealed.dataset}@{S[3]}") and record.files == 3


def test_restore_with_age_and_zstd_gives_the_source_guids(
    sealed: Sealed, pool_factory: Callable[[], Pool], tmp_path: Path
) -> None:
    destination = f"{pool_factory().name}/erin"
    with closing(open_store(sealed.settings.target)) as store:
        _point, paths = download_chain(store, "erin", tmp_path / "dl", snapshot=S[2])
    assert [p.name for p in paths] == [FULL, INCREMENTAL]
    lines = receive_commands(paths, destination, sealed.ssh_key)
    assert lines[2].startswith(f"age -d -i {sealed.ssh_key} -- {FULL} | zstd -dc | zfs receive")
    subprocess.run(["bash", "-c", "set -euo pipefail\n" + "\n".join(lines)], check=True)
    for snap in S[:3]:
        assert guid(f"{destination}@{snap}") == guid(f"{sealed.dataset}@{snap}")


def test_a_wrong_or_missing_identity_fails_before_receiving(
    sealed: Sealed, pool_factory: Callable[[], Pool], tmp_path: Path
) -> None:
    destination = f"{pool_factory().name}/erin"
    stranger = tmp_path / "stranger.txt"
    stranger_public = write_identity_file(stranger)
    with pytest.raises(IdentityError) as caught:
        restore(with_section(sealed.settings, "encryption", identity_file=stranger), destination)
    message = str(caught.value)
    assert message == (
        f"erin/{FULL}: the identity in setting encryption.identity_file opens none of the "
        f"file's recipients (its recipients: {', '.join(sealed.recipients)}); the identity's "
        f"key is {stranger_public}: name the secret key of one of them"
    )
    with pytest.raises(IdentityError, match=r"encryption\.identity_file is unset: name the"):
        restore(sealed.settings, destination)
    with closing(open_runner(sealed.settings)) as runner:
        assert not dataset_exists(runner, destination)
        assert not dataset_exists(runner, destination.split("/")[0] + "/drill")


def test_verify_without_the_identity_checks_the_stored_bytes(
    sealed: Sealed, pool_factory: Callable[[], Pool]
) -> None:
    with closing(open_store(sealed.settings.target)) as store:
        report = verify_member(sealed.settings, store, "erin")
        assert report.verdict is Verdict.OK
        details = {f.filename: f.detail for f in report.files}
        assert details == {FULL: SEALED, INCREMENTAL: SEALED, PLAIN: ""}
        keyed = with_section(sealed.settings, "encryption", identity_file=sealed.age_key)
        full = verify_member(keyed, store, "erin")
        assert [f.detail for f in full.files] == ["", "", ""]
        assert full.files[0].raw_bytes > 0  # decrypted and decompressed to the END record
        # A wrong identity: the stored bytes are still proven, and the report says why not more.
        stranger = sealed.member_dir.parent.parent / "stranger.txt"
        stranger.unlink(missing_ok=True)
        write_identity_file(stranger)
        strange = with_section(sealed.settings, "encryption", identity_file=stranger)
        wrong = verify_member(strange, store, "erin", mark=False)
        assert wrong.verdict is Verdict.OK
        sealed_files = [f for f in wrong.files if f.filename != PLAIN]
        assert all(f.detail.endswith("name the secret key of one of them") for f in sealed_files)
        assert all("END record was not: erin/" in f.detail for f in sealed_files)

        path = sealed.member_dir / INCREMENTAL
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        for keys in (sealed.settings, keyed):
            report = verify_member(keys, store, "erin", mark=False)
            (bad,) = [f for f in report.files if f.filename == INCREMENTAL]
            assert bad.verdict is Verdict.CORRUPT, bad
            assert f"erin/{INCREMENTAL}: " in bad.detail
            assert "does not match the sidecar" in bad.detail or "age data is corrupt" in bad.detail

    # Unmarked, the damage stops the receive: the full stays, the damaged link is rolled back.
    destination = f"{pool_factory().name}/erin"
    with pytest.raises(IntegrityError, match=re.escape(f"erin/{INCREMENTAL}: ")):
        restore(keyed, destination)
    with closing(open_runner(sealed.settings)) as runner:
        assert not dataset_exists(runner, f"{destination}@{S[2]}")
    with closing(open_store(sealed.settings.target)) as store:
        assert verify_member(sealed.settings, store, "erin").verdict is Verdict.CORRUPT
    assert (sealed.member_dir / (INCREMENTAL + ".corrupt")).exists()
    with pytest.raises(ChainError, match="marked corrupt"):
        restore(keyed, destination, force=True)
