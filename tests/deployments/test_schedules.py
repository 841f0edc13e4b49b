"""prefect.yaml repeats flows/schedules.py (YAML cannot import it): read, no server.

The deployed read-back in test_prefect_yaml.py checks the same against a real
Prefect server; this one runs in the unit-test time and names the job that drifted.
"""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML  # typed, unlike PyYAML (both come with Prefect)

from flows.schedules import JOBS, TIMEZONE

PREFECT_YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"
SUFFIX = "-{{ $OFFSITE_HOST }}"


def test_prefect_yaml_runs_the_same_jobs_on_the_same_schedules() -> None:
    deployments = YAML(typ="safe").load(PREFECT_YAML.read_text())["deployments"]
    in_yaml = {
        d["name"].removesuffix(SUFFIX): (
            d["entrypoint"],
            [(s["cron"], s["timezone"]) for s in d["schedules"]],
            d["description"],
        )
        for d in deployments
    }
    in_python = {
        job.name: (
            job.entrypoint,
            [(job.cron, TIMEZONE)] if job.cron else [],
            job.description,
        )
        for job in JOBS
    }
    assert in_yaml == in_python
