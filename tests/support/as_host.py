"""Run a command as if on another machine: its own host name (a private UTS namespace).

    python -m tests.support.as_host hosta prefect worker start ...

The operations tier simulates two ZFS hosts on one box. The tool names a host's
runs and artifacts after the machine's host name, so each simulated host's worker
(and the flow runs it starts) gets a host name of its own, as on real machines.
Linux only, as root.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWUTS = 0x04000000


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python -m tests.support.as_host NAME COMMAND [ARG...]")
    name, command = argv[0], argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUTS) != 0:
        sys.exit(f"as_host: unshare(CLONE_NEWUTS): {os.strerror(ctypes.get_errno())}")
    encoded = name.encode()
    if libc.sethostname(encoded, len(encoded)) != 0:
        sys.exit(f"as_host: sethostname({name}): {os.strerror(ctypes.get_errno())}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
