"""The core's log lines in every flow run's logs: the audit trail of resumes, cuts and refusals.

The core logs through `logging.getLogger("zfs_offsite.…")` and never imports
Prefect, so Prefect's run loggers do not carry its lines. Prefect sends another
logger's records to the flow run's logs on the server when the logger is named
in `PREFECT_LOGGING_EXTRA_LOGGERS` at the moment Prefect configures logging
(`import prefect`, in every process that runs flows: the CLI, `serve`, a
process worker's flow-run process): it gives that logger its API handler. It
does not give it a level: left at NOTSET the logger would inherit the root's
WARNING and drop the INFO lines ("checking N checkpoints", "resuming …",
"earlier attempt … not resumed: …").

A member failure is one line in the run log: Prefect's engine logs a failed task
and a failed flow with a traceback each, which for the core's typed errors (a
known cause, worded with its fix) says nothing the line does not; `QuietFailures`
keeps the line and moves the traceback to DEBUG. Any other exception is a bug
and keeps its traceback.

`send_core_logs` runs when the `flows` package is imported, before any flow
module imports Prefect; children (a worker's or serve's flow-run processes)
inherit the variable. deployments/prefect.yaml also sets it in the work pool's
job variables, for a worker started without it. The core logs paths, member
and snapshot names, sizes and reasons at INFO: nothing secret.
"""

from __future__ import annotations

import logging
import os
import sys

from zfs_offsite.errors import ZfsOffsiteError

CORE_LOGGER = "zfs_offsite"
EXTRA_LOGGERS = "PREFECT_LOGGING_EXTRA_LOGGERS"
# The core logs outside runs too (the CLI's checks before a flow starts): those lines are
# no run's, and Prefect would warn about each one it cannot file under a run.
WHEN_MISSING_FLOW = "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"
CORE_LEVEL = logging.INFO
# The engine's run loggers: they log a failed task run and a failed flow run.
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


class QuietFailures(logging.Filter):
    """A record about a core error keeps its message; its traceback goes to a DEBUG twin."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno <= logging.DEBUG or not isinstance(error, ZfsOffsiteError):
            return True
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(logging.DEBUG):  # seen with PREFECT_LOGGING_LEVEL=DEBUG
            detail = logging.makeLogRecord(record.__dict__)
            detail.levelno, detail.levelname = logging.DEBUG, "DEBUG"
            logger.handle(detail)
        record.exc_info, record.exc_text = None, None
        return True


def quiet_failures() -> None:
    """Install `QuietFailures` on the run loggers once (a logger's filters outlive dictConfig)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietFailures) for f in logger.filters):
            logger.addFilter(QuietFailures())


def with_core_logger(value: str) -> str:
    """`value` (Prefect's comma-separated list of logger names) with the core's logger in it."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    return ",".join(names if CORE_LOGGER in names else [*names, CORE_LOGGER])


def send_core_logs() -> None:
    """Make the core's INFO lines and above part of each flow run's logs in this process."""
    quiet_failures()
    os.environ[EXTRA_LOGGERS] = with_core_logger(os.environ.get(EXTRA_LOGGERS, ""))
    os.environ.setdefault(WHEN_MISSING_FLOW, "ignore")
    core = logging.getLogger(CORE_LOGGER)
    if core.level == logging.NOTSET:  # a level someone chose is theirs
        core.setLevel(CORE_LEVEL)
    configuration = sys.modules.get("prefect.logging.configuration")
    if configuration is not None and getattr(configuration, "PROCESS_LOGGING_CONFIG", None):
        # Prefect configured logging before `flows` was imported, too early to read the
        # variable: give the core's logger the handlers Prefect gives an extra logger.
        for handler in logging.getLogger("prefect.extra").handlers:
            if handler not in core.handlers:
                core.addHandler(handler)
