"""The last line of defence: an expected error that escaped a command becomes one line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from cli import exit_codes, output
from zfs_offsite.errors import ConfigError, ZfsOffsiteError


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Typed errors -> one line and their exit code; Ctrl-C -> 130. Bugs keep their traceback."""
    try:
        yield
    except ConfigError as exc:
        output.error(str(exc))
        sys.exit(exit_codes.USAGE)
    except ZfsOffsiteError as exc:
        output.error(str(exc))
        sys.exit(exit_codes.FAILED)
    except KeyboardInterrupt:
        output.error("interrupted")
        sys.exit(exit_codes.INTERRUPTED)
