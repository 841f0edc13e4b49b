"""The exit codes every command uses, each written once here: name, number, one-line meaning.

The exit-codes reference is generated from this file; other modules use the names
(cli/signals.py maps a stopping signal to INTERRUPTED or TERMINATED).
"""

from __future__ import annotations

OK = 0  # done
FAILED = 1  # a job ran and something failed, or it found something (verify, status warning)
USAGE = 2  # bad command line, unknown member, config error (status: critical)
PREFECT_UNAVAILABLE = 3  # PREFECT_API_URL unreachable, or the local server did not start
# A separate code for 4, so monitoring can tell it from a failure: the Prefect server's
# record of the run may be incomplete.
STORED_RECORD_INCOMPLETE = 4  # stored for every member, but the Prefect server was lost mid-run
INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
TERMINATED = 143  # SIGTERM: 128 + 15

# `status` speaks the monitoring-plugin convention (Nagios, Icinga, Checkmk).
STATUS_OK = 0  # every member ok
STATUS_WARNING = 1  # the worst member is at warning (e.g. older than --warning-hours)
STATUS_CRITICAL = 2  # the worst member is critical, or the pool or server cannot be read
