"""What a configured path is when it is not a regular file, in words for an error line.

`/dev/null` set as a known_hosts, key or config file exists: "does not exist"
sends an admin looking for the wrong problem. Every layer that checks a file
setting (settings, transport, stream) names the path's kind the same way, so
this sits at the bottom beside `errors`.
"""

from __future__ import annotations

import stat

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def path_kind(mode: int) -> str:
    """`a directory`, `a character device`, ...: what `st_mode` says a non-file path is."""
    kind = next((kind for test, kind in _KINDS if test(mode)), None)
    return kind or ("a file" if stat.S_ISREG(mode) else "not a regular file")
