"""The shell lines `restore --to-dir` prints: standard tools only."""

from __future__ import annotations

from pathlib import Path

from zfs_offsite.jobs.restore import receive_commands


def test_the_printed_restore_lines_decrypt_first(tmp_path: Path) -> None:
    paths = [tmp_path / "ds@a.zst.age", tmp_path / "ds@a.to.ds@b.gz", tmp_path / "ds@b.to.ds@c.zst"]
    lines = receive_commands(paths, "tank/r", Path("/root/key.txt"))
    assert lines[2].startswith("age -d -i /root/key.txt -- ds@a.zst.age | zstd -dc | zfs receive")
    assert lines[3].startswith("gzip -dc -- ds@a.to.ds@b.gz | zfs receive")
    assert lines[4].startswith("zstd -dc -- ds@b.to.ds@c.zst | zfs receive")
    unset = receive_commands(paths[:1], "tank/r")
    assert unset[2].startswith("# key.txt: put the path of your age identity (secret key) file")
    assert unset[3].startswith("age -d -i key.txt -- ")
    assert not receive_commands(paths[1:], "tank/r")[2].startswith("#")  # nothing to decrypt


def test_a_raw_chain_ends_with_load_key_and_mount(tmp_path: Path) -> None:
    paths = [tmp_path / "ds@a.zst", tmp_path / "ds@a.to.ds@b.zst.age"]
    lines = receive_commands(paths, "tank/r x", Path("/root/key.txt"), raw=True)
    assert lines[-1] == "zfs load-key 'tank/r x' && zfs mount 'tank/r x'"
    assert not receive_commands(paths, "tank/r")[-1].startswith("zfs load-key")


def test_a_snapshot_inside_the_last_file_ends_with_a_rollback_to_it(tmp_path: Path) -> None:
    paths = [tmp_path / "ds@a.zst", tmp_path / "ds@a.to.ds@d.zst"]
    lines = receive_commands(paths, "tank/r", roll_back_to="c")
    assert lines[-1] == "zfs rollback -r tank/r@c"
    assert lines[-2].startswith("zstd -dc -- ds@a.to.ds@d.zst | zfs receive -F tank/r")
    assert not receive_commands(paths, "tank/r")[-1].startswith("zfs rollback")
