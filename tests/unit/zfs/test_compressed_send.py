"""`zfs send -c`: the argv, the setting, and the probe that asks the host's zfs for the flag.

The probe's answers are recorded from the real implementations (zfs-fuse here,
OpenZFS 2.3.2 in the VM); tests/integration/test_compressed_send_probe.py and
tests/openzfs/test_compressed_send.py ask the real ones.
"""

from __future__ import annotations

import pytest

from tests.unit.zfs.test_encryption import Replay
from zfs_offsite.errors import ConfigError
from zfs_offsite.jobs.backup import sends_compressed
from zfs_offsite.settings import load_settings
from zfs_offsite.zfs.commands import (
    COMPRESSED_PROBE,
    dataset_compression,
    detect_compressed_send,
    estimate_send_size,
    knows_compressed_send,
    recompresses_little,
    send_argv,
)
from zfs_offsite.zfs.model import ZfsFeatures

# `zfs send -c` (no snapshot), exit status 2 from both.
OPENZFS_STDERR = (
    "missing snapshot argument\nusage:\n\tsend [-DLPbcehnpsVvw] [-i|-I snapshot]\n"
    "\t     [-R [-X dataset[,dataset]...]]     <snapshot>\n"
)
ZFS_FUSE_STDERR = "invalid option 'c'\nusage:\n\tsend [-RDp] [-[iI] snapshot] <snapshot>\n"


def test_send_argv_compressed_full_and_incremental() -> None:
    assert send_argv("t/d@b", compressed=True) == ["zfs", "send", "-c", "t/d@b"]
    assert send_argv("t/d@b", "t/d@a", compressed=True) == [
        *("zfs", "send", "-c", "-I", "t/d@a", "t/d@b")
    ]
    assert send_argv("t/d@b", "t/d#a", intermediates=False, compressed=True) == [
        *("zfs", "send", "-c", "-i", "t/d#a", "t/d@b")
    ]
    # Unchanged without it: the argv is part of a resume's stream identity.
    assert send_argv("t/d@b", "t/d@a") == ["zfs", "send", "-I", "t/d@a", "t/d@b"]


def test_raw_send_gets_no_c_it_is_compressed_already() -> None:
    assert send_argv("t/d@b", raw=True, compressed=True) == ["zfs", "send", "-w", "t/d@b"]


@pytest.mark.parametrize(
    ("code", "stderr", "known"),
    [
        (2, OPENZFS_STDERR, True),
        (2, ZFS_FUSE_STDERR, False),
        (2, "zfs: unrecognized option '-c'\n", False),  # a message never seen: no -c
        (0, "missing snapshot argument\n", False),  # a probe that "succeeded" is not trusted
        (127, "sh: zfs: not found\n", False),
    ],
)
def test_probe_takes_only_a_zfs_that_accepted_the_flag(code: int, stderr: str, known: bool) -> None:
    runner = Replay({COMPRESSED_PROBE: (code, "", stderr)})
    assert detect_compressed_send(runner) is known
    assert runner.calls == [COMPRESSED_PROBE]
    assert knows_compressed_send(OPENZFS_STDERR) and not knows_compressed_send(ZFS_FUSE_STDERR)


GET = ("zfs", "get", "-H", "-o", "value", "compression", "t/d")


@pytest.mark.parametrize(
    ("value", "little"),
    [
        ("zstd", True),
        ("zstd-19", True),
        ("gzip-6", True),
        ("gzip", True),
        ("zstd-fast-10", False),  # weaker than our zstd -3
        ("lz4", False),
        ("on", False),
        ("lzjb", False),
        ("zle", False),
        ("off", False),
        (None, False),
    ],
)
def test_which_dataset_compressions_our_zstd_adds_little_to(
    value: str | None, little: bool
) -> None:
    assert recompresses_little(value) is little


@pytest.mark.parametrize(
    ("setting", "raw", "compression", "stderr", "compressed", "calls"),
    [
        ("auto", False, "zstd", OPENZFS_STDERR, True, [GET, COMPRESSED_PROBE]),
        ("auto", False, "gzip-9", ZFS_FUSE_STDERR, False, [GET, COMPRESSED_PROBE]),
        ("auto", False, "lz4", OPENZFS_STDERR, False, [GET]),  # our zstd does better on text
        ("always", False, "lz4", OPENZFS_STDERR, True, [COMPRESSED_PROBE]),
        ("always", False, "off", ZFS_FUSE_STDERR, False, [COMPRESSED_PROBE]),
        ("auto", True, "zstd", OPENZFS_STDERR, False, []),  # raw: -w carries compressed blocks
        ("always", True, "zstd", OPENZFS_STDERR, False, []),
        ("never", False, "zstd", OPENZFS_STDERR, False, []),  # never asks
    ],
)
def test_sends_compressed_follows_setting_raw_compression_and_probe(
    setting: str,
    raw: bool,
    compression: str,
    stderr: str,
    compressed: bool,
    calls: list[tuple[str, ...]],
) -> None:
    runner = Replay({COMPRESSED_PROBE: (2, "", stderr), GET: (0, f"{compression}\n", "")})
    assert sends_compressed(setting, runner, "t/d", raw=raw) is compressed
    assert runner.calls == calls


def test_a_property_zfs_will_not_give_means_plain_sends() -> None:
    runner = Replay({GET: (1, "", "bad property list: invalid property 'compression'\n")})
    assert sends_compressed("auto", runner, "t/d", raw=False) is False
    assert dataset_compression(runner, "t/d") is None


def test_estimate_asks_for_the_compressed_stream() -> None:
    features = ZfsFeatures(version="2.3.2", send_estimate=True, bookmarks=True)
    argv = ("zfs", "send", "-nP", "-c", "-I", "t/d@a", "t/d@b")
    runner = Replay({argv: (0, "incremental\tt/d@a\tt/d@b\t2048\nsize\t2048\n", "")})
    assert estimate_send_size(runner, features, "t/d@b", "t/d@a", compressed=True) == 2048
    assert runner.calls == [argv]


def test_setting_default_values_and_a_bad_one() -> None:
    assert load_settings().source.compressed_send == "auto"
    for value in ("always", "never"):
        assert load_settings(source={"compressed_send": value}).source.compressed_send == value
    with pytest.raises(ConfigError) as caught:
        load_settings(source={"compressed_send": "yes"})
    message = str(caught.value)
    assert message.startswith("setting source.compressed_send") and "\n" not in message
    assert "'auto', 'always' or 'never'" in message
