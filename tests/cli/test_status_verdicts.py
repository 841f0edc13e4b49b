"""The `status` thresholds: the CLI defaults are the core's (verdicts: tests/unit/jobs)."""

from __future__ import annotations


def test_the_cli_defaults_are_the_cores() -> None:
    from cli import status_cmd
    from zfs_offsite.jobs import status

    assert (status_cmd.WARNING_HOURS, status_cmd.CRITICAL_HOURS) == (
        status.WARNING_HOURS,
        status.CRITICAL_HOURS,
    )
