"""The ownership mark: what counts as the tool's own, and the `receive -o` probe, pure."""

from __future__ import annotations

import pytest

from zfs_offsite.zfs.commands import MARK, create_argv, receive_argv
from zfs_offsite.zfs.ownership import DRILL, Mark, knows_receive_option, parse_mark


def test_a_local_mark_of_the_tool_is_read_back() -> None:
    mark = Mark(DRILL, "8c1e 42")
    assert mark.value == "zfs-offsite drill 8c1e-42"
    assert parse_mark(mark.value, "local") == Mark(DRILL, "8c1e-42")


@pytest.mark.parametrize(
    ("value", "source"),
    [
        ("zfs-offsite drill abc", "inherited from tank/restore"),  # a child of a marked dataset
        ("-", "-"),  # never set
        ("somebody-else drill abc", "local"),
        ("zfs-offsite drill", "local"),
    ],
)
def test_anything_else_is_not_the_tools(value: str, source: str) -> None:
    assert parse_mark(value, source) is None


def test_marks_are_set_at_creation() -> None:
    assert create_argv("tank/x", "zfs-offsite drill r") == [
        "zfs",
        "create",
        "-o",
        f"{MARK}=zfs-offsite drill r",
        "tank/x",
    ]
    assert receive_argv("tank/x", mark="v")[-3:] == ["-o", f"{MARK}=v", "tank/x"]
    assert "-o" not in receive_argv("tank/x", force=True)


def test_receive_option_probe_reads_both_zfs_answers() -> None:
    # Recorded: zfs-fuse 0.7 and OpenZFS 2.3 on `zfs receive -o x=y` with no dataset.
    assert not knows_receive_option("invalid option 'o'\nusage:\n\treceive [-vnF] <filesystem>")
    assert knows_receive_option("missing snapshot argument\nusage:\n\treceive [-vMnsFhu] ...")
