"""The ZFS command line: argv builders, feature detection and output parsing.

Every `zfs` argv the tool runs is built here, so what it may do to a pool can
be read in one file. Destroys are of one snapshot or bookmark, with one
exception: `destroy_scratch_argv`, used only by the restore drill on the
scratch dataset it created itself (`<drill.scratch>/<member>`), which must go
with its received snapshots and any mount still held.

Parsing is kept in pure functions so it can be tested on recorded output.
Only `zfs get -H -p` is used for listing: zfs-fuse has no `zfs list -p`, and
OpenZFS 2.x answers the same call in the same format.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from zfs_offsite.zfs.model import Bookmark, Dataset, Snapshot, ZfsFeatures
from zfs_offsite.zfs.runner import CommandFailed, Runner

LIST_PROPERTIES = ("type", "guid", "createtxg", "creation", "userrefs")
# Asked for where this ZFS knows it (OpenZFS 0.8+); zfs-fuse refuses the whole
# `zfs get` over it ("bad property list: invalid property 'encryption'").
ENCRYPTION = "encryption"
BOOKMARK_FIELDS = ("name", "guid", "createtxg", "creation")


def list_argv(
    pool: str, user_properties: Sequence[str] = (), *, encryption: bool = False
) -> list[str]:
    props = ",".join([*LIST_PROPERTIES, *([ENCRYPTION] if encryption else []), *user_properties])
    return ["zfs", "get", "-H", "-p", "-r", "-o", "name,property,value", props, pool]


def unknown_property(stderr: str, prop: str) -> bool:
    """True if `zfs get` failed because this ZFS has no property `prop` at all.

    zfs-fuse and OpenZFS both say "bad property list: invalid property 'x'"
    before looking at any dataset, so this is a check of the ZFS, not the pool.
    """
    return f"invalid property '{prop}'" in stderr


def parse_list_output(text: str) -> dict[str, Dataset]:
    """Turn `zfs get -H -p -o name,property,value` lines into datasets with sorted snapshots."""
    props: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise ValueError(f"unexpected line from zfs get: {line!r}")
        name, prop, value = parts
        props.setdefault(name, {})[prop] = value
    datasets: dict[str, Dataset] = {}
    snapshots: dict[str, list[Snapshot]] = {}
    for name, values in props.items():
        kind = values.get("type")
        if kind == "snapshot":
            dataset, _, snap = name.partition("@")
            snapshots.setdefault(dataset, []).append(
                Snapshot(
                    dataset=dataset,
                    name=snap,
                    guid=int(values["guid"]),
                    createtxg=int(values["createtxg"]),
                    creation=int(values.get("creation", "0")),
                    userrefs=int(refs) if (refs := values.get("userrefs", "-")).isdigit() else None,
                )
            )
        elif kind in {"filesystem", "volume"}:
            known = (*LIST_PROPERTIES, ENCRYPTION)
            user = {k: v for k, v in values.items() if k not in known}
            datasets[name] = Dataset(
                name=name,
                guid=int(values["guid"]),
                properties=user,
                encryption=values.get(ENCRYPTION),
                kind=kind,
            )
    return {
        name: replace(
            ds, snapshots=tuple(sorted(snapshots.get(name, []), key=lambda s: s.createtxg))
        )
        for name, ds in datasets.items()
    }


def bookmarks_argv(pool: str) -> list[str]:
    return [
        "zfs",
        "list",
        "-H",
        "-p",
        "-r",
        "-t",
        "bookmark",
        "-o",
        ",".join(BOOKMARK_FIELDS),
        pool,
    ]


def parse_bookmarks(text: str) -> dict[str, list[Bookmark]]:
    """`zfs list -H -p -t bookmark -o name,guid,createtxg,creation` lines, by dataset."""
    found: dict[str, list[Bookmark]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(BOOKMARK_FIELDS) or "#" not in parts[0]:
            raise ValueError(f"unexpected line from zfs list -t bookmark: {line!r}")
        dataset, _, name = parts[0].partition("#")
        found.setdefault(dataset, []).append(
            Bookmark(dataset, name, int(parts[1]), int(parts[2]), int(parts[3]))
        )
    return found


def list_datasets(
    runner: Runner,
    pool: str,
    user_properties: Sequence[str] = (),
    *,
    with_bookmarks: bool = False,
    with_encryption: bool = False,
) -> dict[str, Dataset]:
    """All datasets of a pool with their snapshots (one command), and bookmarks if asked.

    `with_encryption` asks for the `encryption` property too: that is the
    feature check. A ZFS without it (zfs-fuse) refuses the call and is asked
    again without it; its datasets have `encryption` None, never sent raw.
    """
    try:
        listed = runner.run(list_argv(pool, user_properties, encryption=with_encryption))
    except CommandFailed as exc:
        if not with_encryption or not unknown_property(exc.result.stderr, ENCRYPTION):
            raise
        listed = runner.run(list_argv(pool, user_properties))
    datasets = parse_list_output(listed.stdout)
    if not with_bookmarks:
        return datasets
    marks = parse_bookmarks(runner.run(bookmarks_argv(pool)).stdout)
    return {
        name: replace(ds, bookmarks=tuple(sorted(marks.get(name, []), key=lambda b: b.createtxg)))
        for name, ds in datasets.items()
    }


_VERSION = re.compile(r"^zfs-(\d+\.\d+\S*)", re.MULTILINE)


def parse_version(text: str) -> str | None:
    """The userland version from `zfs version` (OpenZFS 0.8+), e.g. '2.3.2-2~bpo12+2'."""
    match = _VERSION.search(text)
    return match.group(1) if match else None


def detect_features(runner: Runner) -> ZfsFeatures:
    """Ask the host's zfs what it supports instead of assuming one implementation."""
    result = runner.run(["zfs", "version"], check=False)
    version = parse_version(result.stdout) if result.returncode == 0 else None
    if version is None:
        # zfs-fuse and other pre-0.8 ZFS: no `send -nP`, no bookmarks.
        return ZfsFeatures(version=None, send_estimate=False, bookmarks=False)
    return ZfsFeatures(version=version, send_estimate=True, bookmarks=True)


# `zfs send -c` without a snapshot sends nothing: a ZFS that knows the flag
# complains about the missing snapshot (OpenZFS, illumos), one that does not
# (zfs-fuse) about the flag ("invalid option 'c'"), both before any I/O.
COMPRESSED_PROBE = ("zfs", "send", "-c")


def knows_compressed_send(stderr: str) -> bool:
    """True if the probe failed over the missing snapshot, i.e. `-c` itself was accepted.

    Any other answer (an unknown flag, a message never seen) means no `-c`:
    a plain send works everywhere, so only a ZFS that took the flag gets it.
    """
    return "missing snapshot" in stderr and "invalid option" not in stderr


def detect_compressed_send(runner: Runner) -> bool:
    """Whether this host's `zfs send` has `-c` (OpenZFS 0.7+), asked, not assumed."""
    result = runner.run(list(COMPRESSED_PROBE), check=False)
    return result.returncode != 0 and knows_compressed_send(result.stderr)


def recompresses_little(compression: str | None) -> bool:
    """True for a `compression` whose blocks our zstd -3 would shrink little further.

    zstd (any level but the `zstd-fast` ones) and gzip: measured, their blocks
    in a `send -c` stream store within about -8..+10 % of our compressor over the
    plain stream. Not lz4/lzjb/`on`/zle, nor `off` (no compressed blocks to keep).
    """
    if compression is None:
        return False
    zstd = compression.startswith("zstd") and not compression.startswith("zstd-fast")
    return zstd or compression.startswith("gzip")


def compression_argv(dataset: str) -> list[str]:
    """`zfs get compression` of one dataset, the bare value (`lz4`, `zstd-3`, `off`)."""
    return ["zfs", "get", "-H", "-o", "value", "compression", dataset]


def dataset_compression(runner: Runner, dataset: str) -> str | None:
    """The dataset's `compression` property, or None if this zfs would not say."""
    result = runner.run(compression_argv(dataset), check=False)
    value = result.stdout.strip()
    return value if result.returncode == 0 and value else None


def send_argv(
    snapshot: str,
    base: str | None = None,
    *,
    intermediates: bool = True,
    raw: bool = False,
    compressed: bool = False,
) -> list[str]:
    """`zfs send`: full, or incremental from `base` (a snapshot or a bookmark).

    `raw` (`-w`) sends a natively encrypted dataset's blocks as they are on
    disk: still encrypted with its key, which need not be loaded to send.
    `compressed` (`-c`) sends blocks compressed on disk as they are, so the
    NAS does not decompress them; a raw send does that already, so it gets no `-c`.
    """
    flag = "-w" if raw else "-c" if compressed else None
    send = ["zfs", "send", *([flag] if flag else [])]
    if base is None:
        return [*send, snapshot]
    return [*send, "-I" if intermediates else "-i", base, snapshot]


def hold_argv(tag: str, snapshot: str) -> list[str]:
    return ["zfs", "hold", tag, snapshot]


def holds_argv(snapshot: str) -> list[str]:
    """`zfs holds -H`: one line per hold, `snapshot<TAB>tag<TAB>when`."""
    return ["zfs", "holds", "-H", snapshot]


def parse_hold_tags(text: str) -> set[str]:
    return {fields[1] for line in text.splitlines() if len(fields := line.split("\t")) >= 2}


def release_argv(tag: str, snapshot: str) -> list[str]:
    return ["zfs", "release", tag, snapshot]


def bookmark_argv(snapshot: str, bookmark: str) -> list[str]:
    return ["zfs", "bookmark", snapshot, bookmark]


def destroy_argv(name: str) -> list[str]:
    """`zfs destroy` of one snapshot or bookmark (not recursive)."""
    return ["zfs", "destroy", name]


def destroy_scratch_argv(dataset: str) -> list[str]:
    """`zfs destroy -r -f`: the drill's scratch dataset with its snapshots, even if mounted.

    The only recursive destroy. Its one caller is the restore drill, on
    `<drill.scratch>/<member>`, a dataset the drill itself received and owns by name.
    """
    return ["zfs", "destroy", "-r", "-f", dataset]


# The user property that marks a dataset this tool created (zfs/ownership.py reads it).
MARK = "zfs-offsite:created-by"


def mark_argv(dataset: str) -> list[str]:
    """`zfs get` of the mark on one dataset: `value<TAB>source`."""
    return ["zfs", "get", "-H", "-o", "value,source", MARK, dataset]


def set_mark_argv(dataset: str, value: str) -> list[str]:
    """`zfs set` of the mark, for a ZFS whose `zfs receive` has no `-o` (zfs-fuse)."""
    return ["zfs", "set", f"{MARK}={value}", dataset]


def get_property_argv(prop: str, dataset: str) -> list[str]:
    """`zfs get` of one property of one dataset: the bare value (`-`: a user property unset)."""
    return ["zfs", "get", "-H", "-o", "value", prop, dataset]


def set_property_argv(dataset: str, prop: str, value: str) -> list[str]:
    """`zfs set prop=value` on one dataset (the tool's own user properties only)."""
    return ["zfs", "set", f"{prop}={value}", dataset]


# `zfs receive -o` without a dataset: a ZFS that knows the flag (OpenZFS 0.8+)
# complains about the missing argument, one that does not (zfs-fuse) about the
# flag ("invalid option 'o'"), both before reading stdin.
RECEIVE_OPTION_PROBE = ("zfs", "receive", "-o", f"{MARK}=probe")


def exists_argv(dataset: str) -> list[str]:
    """`zfs list` of one dataset: exit status 0 if it exists."""
    return ["zfs", "list", "-H", "-o", "name", dataset]


def create_argv(dataset: str, mark: str | None = None) -> list[str]:
    """`zfs create` of one dataset whose parent exists, with the tool's mark if given."""
    return ["zfs", "create", *(["-o", f"{MARK}={mark}"] if mark else []), dataset]


def guid_argv(snapshot: str) -> list[str]:
    """`zfs get guid` of one snapshot, the bare number on stdout."""
    return ["zfs", "get", "-H", "-p", "-o", "value", "guid", snapshot]


def receive_argv(dataset: str, *, force: bool = False, mark: str | None = None) -> list[str]:
    """`zfs receive` into `dataset`; `-F` (rollback/overwrite) only when asked.

    `mark` sets the tool's ownership mark (`-o`, OpenZFS only: ask
    `ownership.detect_receive_option` first). No other `-o`/`-x`: a raw stream
    (`send -w`) is received as it was sent, still encrypted, and needs its key
    (`zfs load-key`) to mount.
    """
    options = ["-o", f"{MARK}={mark}"] if mark else []
    return ["zfs", "receive", *(["-F"] if force else []), *options, dataset]


def parse_send_estimate(text: str) -> int | None:
    """The total from `zfs send -nP` output (`size\\t<bytes>` line)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "size" and parts[1].isdigit():
            return int(parts[1])
    return None


def estimate_send_size(
    runner: Runner,
    features: ZfsFeatures,
    snapshot: str,
    base: str | None = None,
    *,
    raw: bool = False,
    compressed: bool = False,
) -> int | None:
    """Estimated stream bytes where the host supports `send -nP`, else None."""
    if not features.send_estimate:
        return None
    intermediates = base is None or "#" not in base
    argv = send_argv(snapshot, base, intermediates=intermediates, raw=raw, compressed=compressed)
    try:
        result = runner.run([*argv[:2], "-nP", *argv[2:]])
    except CommandFailed:
        return None
    return parse_send_estimate(result.stdout + "\n" + result.stderr)


def rollback_argv(snapshot: str) -> list[str]:
    """`zfs rollback -r`: back to `snapshot`, destroying the later snapshots (never clones)."""
    return ["zfs", "rollback", "-r", snapshot]


def create_parents_argv(dataset: str) -> list[str]:
    """`zfs create -p`: `dataset` and any missing ancestors; an existing one is left alone."""
    return ["zfs", "create", "-p", dataset]


def origins_argv(pool: str) -> list[str]:
    """Every dataset of a pool with its `origin` (the snapshot a clone was made from, or `-`)."""
    return ["zfs", "get", "-H", "-r", "-o", "name,value", "origin", pool]


def parse_origins(text: str) -> dict[str, str]:
    """Clone -> origin snapshot, from `zfs get -H -o name,value origin` lines (`-`: no clone)."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition("\t")
        if value.strip() not in ("", "-"):
            found[name] = value.strip()
    return found


def error_text(stderr: str, limit: int = 400) -> str:
    """What a failed zfs command said, as one line.

    zfs wraps one message over several lines ("destination has snapshots (eg. x@a)"
    / "must destroy them to overwrite it"); the last line alone loses the problem.
    """
    text = " ".join(line.strip() for line in stderr.splitlines() if line.strip())
    if not text:
        return "(no message)"
    return text if len(text) <= limit else "…" + text[-limit:]
