"""The names of files being written: `<final>.<attempt>.partial`.

The store writes every new file under such a name and renames it into place;
`archive.names` reads it back to say which backup a leftover partial belongs
to. Both stand on this leaf. Pure: text only.

A resumable upload keeps its checkpoints beside its partial file, in
`<final>.<attempt>.ckpt.partial`: a `.partial` too, so everything that skips,
counts or prunes partial files treats it the same way, and never as a backup.
"""

from __future__ import annotations

import re

PARTIAL_SUFFIX = ".partial"
CHECKPOINT_MARK = ".ckpt"
# `<final>.<attempt>.partial`: each upload attempt writes a partial file of its own
# (`remote.store.new_attempt` makes the 12 hex digits); its checkpoints add `.ckpt`.
ATTEMPT = re.compile(r"\.[0-9a-f]{12}(?:\.ckpt)?$")
_DATA_PARTIAL = re.compile(r"^(?P<final>.+)\.(?P<attempt>[0-9a-f]{12})\.partial$")


def partial_name(filename: str, attempt: str | None = None) -> str:
    """`<file>.<attempt>.partial`; without an attempt, the plain `<file>.partial`."""
    return f"{filename}.{attempt}{PARTIAL_SUFFIX}" if attempt else filename + PARTIAL_SUFFIX


def checkpoint_name(partial: str) -> str:
    """The checkpoint file of the partial file `<file>.<attempt>.partial`."""
    assert partial.endswith(PARTIAL_SUFFIX), partial
    return partial[: -len(PARTIAL_SUFFIX)] + CHECKPOINT_MARK + PARTIAL_SUFFIX


def split_partial(name: str) -> tuple[str, str] | None:
    """`(final, attempt)` of a data partial `<final>.<attempt>.partial`; None for anything
    else (a checkpoint file, a plain `.partial`, another name)."""
    match = _DATA_PARTIAL.match(name)
    return (match["final"], match["attempt"]) if match else None


def is_checkpoint(name: str) -> bool:
    """True for the checkpoint file of a partial upload (`<file>.<attempt>.ckpt.partial`)."""
    return name.endswith(CHECKPOINT_MARK + PARTIAL_SUFFIX)
