"""Serve the backup flow as deployment `fault-cancel` from this process (a Prefect runner)."""

from __future__ import annotations

from flows.backup import backup_flow

if __name__ == "__main__":
    backup_flow.serve(name="fault-cancel", print_starting_message=False)
