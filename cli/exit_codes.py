"""The exit codes every command uses, in one place (README "Exit codes" documents them)."""

from __future__ import annotations

OK = 0
FAILED = 1  # a job ran and something failed, or it found something (verify, status warning)
USAGE = 2  # bad command line, unknown member, config error (status: critical)
PREFECT_UNAVAILABLE = 3  # PREFECT_API_URL unreachable, or the local server did not start
# The backup is stored for every member, but the Prefect server was lost during the run:
# its record of the run may be incomplete (a separate code, so monitoring can tell).
STORED_RECORD_INCOMPLETE = 4
INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
TERMINATED = 143  # SIGTERM: 128 + 15

# `status` speaks the monitoring-plugin convention (Nagios, Icinga, Checkmk).
STATUS_OK = 0
STATUS_WARNING = 1
STATUS_CRITICAL = 2
