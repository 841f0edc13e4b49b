"""Which cut uploads the planner may prefer: only those tonight's stream settings can resume."""

from __future__ import annotations

from pathlib import Path

from zfs_offsite.archive.index import read_member_archive
from zfs_offsite.archive.names import BackupName, Compression
from zfs_offsite.jobs.backup import recorded_stream, resumable_tonight, why_not_resumed_tonight
from zfs_offsite.remote.local import LocalStore
from zfs_offsite.settings import load_settings
from zfs_offsite.stream.checkpoints import StreamIdentity, checkpoint_line, header_line
from zfs_offsite.values.partials import checkpoint_name, partial_name

NAME = BackupName("tank_m", "s1", Compression.ZSTD)
CUT = StreamIdentity("tank/m", 11, None, ("zfs", "send", "tank/m@s1"), False, "zstd", 3)


def cut_upload(root: Path, identity: StreamIdentity = CUT) -> LocalStore:
    """A member directory holding a partial upload of NAME with one checkpoint."""
    (root / "m").mkdir(exist_ok=True)
    partial = partial_name(NAME.filename, "0123456789ab")
    (root / "m" / partial).write_bytes(b"x" * 4096)
    header = header_line(identity, 1024) + checkpoint_line(1024, "0" * 64)
    (root / "m" / checkpoint_name(partial)).write_bytes(header)
    return LocalStore(root)


def test_same_settings_resume() -> None:
    assert why_not_resumed_tonight(CUT, NAME, 3, raw=False) is None


def test_a_changed_level_or_raw_send_does_not() -> None:
    assert why_not_resumed_tonight(CUT, NAME, 5, raw=False) == "compression level 3 -> 5"
    assert why_not_resumed_tonight(CUT, NAME, 3, raw=True) == "raw send False -> True"
    assert why_not_resumed_tonight(None, NAME, 3, raw=False) == "its checkpoints are unreadable"


def test_the_header_is_read_from_the_store(tmp_path: Path) -> None:
    store = cut_upload(tmp_path)
    archive = read_member_archive(store, "m", "tank_m")
    assert recorded_stream(store, archive, NAME) == CUT


def test_only_resumable_uploads_are_offered_to_the_planner(tmp_path: Path) -> None:
    store = cut_upload(tmp_path)
    archive = read_member_archive(store, "m", "tank_m")
    level3 = load_settings(compression={"algorithm": "zstd", "level": 3})
    level5 = load_settings(compression={"algorithm": "zstd", "level": 5})
    assert resumable_tonight(level3, store, archive, raw=False) == [NAME]
    assert resumable_tonight(level5, store, archive, raw=False) == []


def test_unreadable_checkpoints_are_not_preferred(tmp_path: Path) -> None:
    store = cut_upload(tmp_path)
    for path in (tmp_path / "m").glob("*.ckpt.partial"):
        path.write_bytes(b"not a header\n")
    archive = read_member_archive(store, "m", "tank_m")
    settings = load_settings(compression={"algorithm": "zstd", "level": 3})
    assert resumable_tonight(settings, store, archive, raw=False) == []
