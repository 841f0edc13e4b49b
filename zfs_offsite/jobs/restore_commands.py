"""The shell lines that restore a chain with standard tools only, without this tool.

Two forms share one rule for a file: decrypt (`age -d`), decompress (`zstd -dc`
or `gzip -dc`), `zfs receive` (`-F` after the first link). Downloaded files
(`restore --to-dir`) are read from the current directory; `restore --commands`
reads each file straight from the target: `rclone cat` on an s3:// target (the
keys from the AWS environment or ~/.aws, never printed), the file itself on a
file:// one. An SFTP server may allow no shell command (internal-sftp), so its
files are downloaded first (`--to-dir`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from zfs_offsite.archive.names import Compression, parse_backup_name
from zfs_offsite.errors import ConfigError
from zfs_offsite.plan.chains import RestorePoint
from zfs_offsite.remote.rclone import rclone_cat, rclone_remote
from zfs_offsite.settings.sections import TargetSettings
from zfs_offsite.transport.openssh import command_argv
from zfs_offsite.transport.ssh import SshEndpoint
from zfs_offsite.zfs.commands import create_parents_argv, receive_argv, rollback_argv

Reader = Callable[[str], str]  # a file's path below the archive -> shell words writing it out


def on_zfs_host(argv: list[str], nas: SshEndpoint | None, *, tty: bool = False) -> str:
    """A zfs command line as printed: as is, or through ssh to the NAS in pull mode.

    The remote command is one quoted word, so the NAS's shell sees the same words.
    """
    line = shlex.join(argv)
    if nas is None:
        return line
    return f"{shlex.join(command_argv(nas, tty=tty))} {shlex.quote(line)}"


def restore_lines(
    names: Sequence[str],
    destination: str,
    identity_file: Path | None = None,
    *,
    reader: Reader | None = None,
    member: str = "",
    raw: bool = False,
    roll_back_to: str | None = None,
    nas: SshEndpoint | None = None,
) -> list[str]:
    """The lines that receive the files `names` (a chain, in order) into `destination`.

    `reader`: how a file is read (given `member/name`); None: from the current
    directory. An encrypted file goes through `age -d -i <identity>` first
    (Debian's `age`); without a configured identity the line names a
    placeholder, `key.txt`. A raw chain (`zfs send -w`) arrives still encrypted
    with the dataset's own key: the last line loads that key and mounts it.
    `roll_back_to`: the snapshot inside the last (`-I`) file that was asked
    for; a last line rolls back to it. `zfs receive` needs the parent dataset:
    a `zfs create -p` line makes it (and leaves an existing one alone). `nas`:
    pull mode, where the files are here but the pool is on the NAS; every zfs
    line then runs there through ssh.
    """
    lines = []
    parent = destination.rpartition("/")[0]
    if "/" in parent:  # below the pool, which must exist anyway
        lines.append(on_zfs_host(create_parents_argv(parent), nas))
    identity = shlex.quote(str(identity_file.absolute() if identity_file else "key.txt"))
    encrypted = [n for n in names if (b := parse_backup_name(n)) is not None and b.encrypted]
    if encrypted and identity_file is None:  # after a `cd`, a bare key.txt would not exist
        lines.append(
            "# key.txt: put the path of your age identity (secret key) file there; "
            "setting encryption.identity_file is unset here"
        )
    for index, filename in enumerate(names):
        name = parse_backup_name(filename)
        receive = on_zfs_host(receive_argv(destination, force=index > 0), nas)
        gzip = name is not None and name.compression is Compression.GZIP
        tool = "gzip -dc" if gzip else "zstd -dc"
        steps = [f"age -d -i {identity}"] if name is not None and name.encrypted else []
        if reader is not None:
            steps.insert(0, reader(f"{member}/{filename}"))
        elif steps:
            steps[0] += f" -- {shlex.quote(filename)}"
        else:
            tool += f" -- {shlex.quote(filename)}"
        lines.append(" | ".join([*steps, tool, receive]))
    if roll_back_to is not None:
        lines.append(on_zfs_host(rollback_argv(f"{destination}@{roll_back_to}"), nas))
    if raw:
        target = shlex.quote(destination)
        load = f"zfs load-key {target} && zfs mount {target}"
        if nas is not None:  # load-key asks for the passphrase: ssh needs a terminal
            load = f"{shlex.join(command_argv(nas, tty=True))} {shlex.quote(load)}"
        lines.append(load)
    return lines


def target_reader(target: TargetSettings) -> Reader:
    """How a standard tool writes a file of the target to stdout; ConfigError for sftp://."""
    url = target.parsed
    if url.scheme == "s3":
        s3 = target.s3
        # boto3 takes the endpoint from these variables too: the lines must name the same store.
        endpoint = (
            s3.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        region = s3.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")

        def read_object(path: str) -> str:
            key = "/".join(part for part in (url.path, path) if part)
            remote = rclone_remote(
                url.host,
                key,
                endpoint_url=endpoint,
                region=region,
                addressing_style=s3.addressing_style,
                profile=s3.profile,
            )
            return rclone_cat(remote)

        return read_object
    if url.scheme == "file":
        root = PurePosixPath(url.path)
        return lambda path: f"cat -- {shlex.quote(str(root / path))}"
    raise ConfigError(
        f"--commands reads the archive straight from s3:// and file:// targets; "
        f"{target.parsed} is an SFTP server, which may allow no shell command: "
        "download the chain with --to-dir, which prints the commands for the files"
    )


def stream_commands(
    target: TargetSettings,
    member: str,
    point: RestorePoint,
    destination: str,
    identity_file: Path | None = None,
    *,
    nas: SshEndpoint | None = None,
) -> list[str]:
    """The lines that restore a planned chain straight from the target, in order.

    Nothing is downloaded first: each pipeline reads its file once, and a
    damaged one fails in `age -d` (its MAC), `zstd -dc` (its frame checksum)
    or `zfs receive` (the stream's checksums), never as a snapshot.
    """
    return restore_lines(
        [file.filename for file in point.chain],
        destination,
        identity_file,
        reader=target_reader(target),
        member=member,
        raw=any(file.raw for file in point.chain),
        roll_back_to=point.snapshot if point.inside else None,
        nas=nas,
    )
