"""The exit codes every command uses, each written once here.

`MEANINGS` is what a user reads about each code: docs/reference/exit-codes.md is
generated from it (scripts/docs_reference.py), so the page cannot drift from the
codes the commands return. Other modules use the names (cli/signals.py maps a
stopping signal to INTERRUPTED or TERMINATED).
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

MEANINGS: dict[int, str] = {
    OK: "done; `status`: every member ok",
    FAILED: "a job ran and something failed (a member's backup, a restore, a drill, a "
    "prune) or verify found a corrupt file or broken chain; also `plan`, `backup` and "
    "`restore` on an archive root that is missing or empty where an archive was (the disk "
    "not mounted); `status`: warning",
    USAGE: "bad command line, unknown member (or a name no member can have, for every "
    "command that takes one; `restore` of a member the archive has no directory for, a "
    "destination ZFS cannot create, a `--force` destination it refuses before destroying "
    "anything, a `--to-dir` that is a file or device; `backup`, `plan` and `drill` whose "
    "selection matches no dataset), config error (also an encryption identity that is "
    "missing, unreadable or opens none of a file's recipients); `status`: critical (also "
    "when it cannot read the pool or the backup server)",
    PREFECT_UNAVAILABLE: "Prefect unreachable: `PREFECT_API_URL` does not answer, or the "
    "temporary local server did not start within its budget; also a server lost during a "
    "run when the command cannot tell what the run finished",
    STORED_RECORD_INCOMPLETE: "`backup`: every member is stored (or up to date), but the "
    "Prefect server stopped answering during the run: its record of the run may be "
    "incomplete",
    INTERRUPTED: "interrupted (SIGINT, Ctrl-C)",
    TERMINATED: "terminated (SIGTERM)",
}
