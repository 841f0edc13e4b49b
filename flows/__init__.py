"""The Prefect flows, one per job; importing the package sends the core's logs to each run."""

from flows.logs import send_core_logs

send_core_logs()
