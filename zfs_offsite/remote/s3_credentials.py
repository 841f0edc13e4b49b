"""S3 keys from a named credentials block (`target.s3.credentials_block`, issue 22).

The settings hold only the block's NAME; the keys live on the Prefect server
(prefect-aws's `AwsCredentials` block type) and are read when a store is
opened. Reading them needs Prefect, which the core never imports: the shell
that runs jobs (`flows/aws_block.py`, registered when the `flows` package is
imported: the CLI, `serve`, a worker's flow-run process) hands its reader to
`read_blocks_with`. A process without one (the core used on its own) is told so
in one line instead of falling back to other keys.

`S3Keys` never shows its secret or token (repr), and a block is read once per
process: a night opens the store once per member and task.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from zfs_offsite.errors import ConfigError


@dataclass(frozen=True)
class S3Keys:
    """An S3 key pair (and session token) read from a block; its region if it names one."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None


BlockReader = Callable[[str], S3Keys]
"""Reads the named block, or raises ConfigError (not found, no server, no keys)."""

_reader: BlockReader | None = None
_read: dict[str, S3Keys] = {}
_lock = threading.Lock()


def read_blocks_with(reader: BlockReader | None) -> None:
    """Install the shell's block reader (None: none); forgets blocks read before."""
    global _reader
    with _lock:
        _reader = reader
        _read.clear()


def keys_from_block(name: str) -> S3Keys:
    """The keys of block `name`, read once per process."""
    with _lock:
        if name in _read:
            return _read[name]
        if _reader is None:
            raise ConfigError(
                f"target.s3.credentials_block {name!r}: this process cannot read Prefect "
                "blocks: run the job through zfs-offsite (a command, `serve` or a deployment), "
                "or unset it and give the keys through the AWS chain"
            )
        keys = _reader(name)
        _read[name] = keys
        return keys
