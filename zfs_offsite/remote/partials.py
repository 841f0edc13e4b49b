"""The names of files being written: `<final>.<attempt>.partial`.

The store writes every new file under such a name and renames it into place, so
the naming belongs to the store's layer; `archive.names` reads it back to say
which backup a leftover partial belongs to. Pure: text only.
"""

from __future__ import annotations

import re

PARTIAL_SUFFIX = ".partial"
# `<final>.<attempt>.partial`: each upload attempt writes a partial file of its own
# (`remote.store.new_attempt` makes the 12 hex digits).
ATTEMPT = re.compile(r"\.[0-9a-f]{12}$")


def partial_name(filename: str, attempt: str | None = None) -> str:
    """`<file>.<attempt>.partial`; without an attempt, the plain `<file>.partial`."""
    return f"{filename}.{attempt}{PARTIAL_SUFFIX}" if attempt else filename + PARTIAL_SUFFIX
