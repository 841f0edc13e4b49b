"""`deployments/prefect.yaml` deployed against a real `prefect server start`, then read back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deployments.naming import deployment_name, served_name, work_pool
from deployments.serve import JOBS, TIMEZONE, served_deployments
from tests.support.deployments import HOST, PREFECT, REPO, prefect


def inspect(env: dict[str, str], name: str) -> dict[str, object]:
    return json.loads(prefect(env, "deployment", "inspect", name, "--output", "json"))


def test_nightly_backup_deployment_reads_back(deployed: dict[str, str]) -> None:
    d = inspect(deployed, "zfs-offsite-backup/nightly-nas")
    assert d["work_pool_name"] == "zfs-offsite-nas"
    assert d["job_variables"]["env"] == {"PREFECT_LOGGING_EXTRA_LOGGERS": "zfs_offsite"}
    # $OFFSITE_HOME of the deploying host (deploy.sh reads /etc/default/zfs-offsite)
    assert d["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
    ]
    assert d["entrypoint"] == "flows/backup.py:backup_flow"
    [schedule] = d["schedules"]
    assert schedule["schedule"]["cron"] == "30 2 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Berlin"
    assert schedule["active"] is True
    assert d["global_concurrency_limit"]["limit"] == 1
    assert d["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    schema = d["parameter_openapi_schema"]
    params = schema["properties"]  # flat: the Custom run form shows each with its description
    assert set(params) == {"members", "force_full", "dry_run"}
    assert all(p.get("description") for p in params.values())
    assert d["parameters"] == {}


DEPLOYMENTS = {
    "zfs-offsite-backup/nightly-nas": {"members", "force_full", "dry_run"},
    "zfs-offsite-drill/weekly-drill-nas": {"members"},
    "zfs-offsite-verify/weekly-verify-nas": {"members", "mark", "all_files"},
    "zfs-offsite-prune/weekly-prune-nas": {"members", "dry_run"},
    "zfs-offsite-restore/on-demand-nas": {
        "member",
        "destination",
        "snapshot",
        "force",
        "resume",
        "to_dir",
        "destroy_live_dataset",
        "print_commands",  # restore --commands: the standard-tool lines, nothing received
    },
}


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_every_deployment_matches_the_serve_jobs(deployed: dict[str, str], name: str) -> None:
    """`zfs-offsite serve` and the workers run the same flows on the same schedules."""
    d = inspect(deployed, name)
    assert d["work_pool_name"] == work_pool(HOST)
    (job,) = [j for j in JOBS if deployment_name(j.name, HOST) == d["name"]]
    assert d["entrypoint"] == job.entrypoint
    if job.cron is None:
        assert d["schedules"] == []
    else:
        assert d["schedules"][0]["schedule"]["cron"] == job.cron
        assert d["schedules"][0]["schedule"]["timezone"] == TIMEZONE
        assert d["global_concurrency_limit"]["limit"] == 1
        assert d["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    # Flat parameters, each with the description the UI's Custom run form shows.
    properties = d["parameter_openapi_schema"]["properties"]
    assert set(properties) == DEPLOYMENTS[name]
    assert all(p.get("description") for p in properties.values())


def test_alerts_are_installed_and_replaced(deployed: dict[str, str]) -> None:
    env = deployed
    create_block = (
        "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B;"
        "B(name='lab', url='http://127.0.0.1:9/hook', json_data={'text': '{{body}}'})"
        ".save('lab-alerts', overwrite=True)"
    )
    subprocess.run([sys.executable, "-c", create_block], env=env, cwd=REPO, check=True)
    ids = [
        subprocess.run(
            [sys.executable, "deployments/alerts.py", "--block", "custom-webhook/lab-alerts"],
            env={**env, "OFFSITE_HOST": HOST},  # its default deployment is this host's nightly
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()  # the failed-night, missed-night and zombie automations
        for _ in range(2)  # a second install replaces the first
    ]
    assert len(ids[1]) == 3
    for old in ids[0]:
        gone = subprocess.run(
            [PREFECT, "automation", "inspect", "--id", old, "--json"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert "not found" in gone.stdout + gone.stderr
    failed, missed, zombie = (
        json.loads(prefect(env, "automation", "inspect", "--id", i, "--json")) for i in ids[1]
    )
    deployment_id = inspect(env, "zfs-offsite-backup/nightly-nas")["id"]
    watched = f"prefect.deployment.{deployment_id}"
    assert failed["trigger"]["posture"] == "Reactive"
    assert set(failed["trigger"]["expect"]) >= {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
    }
    assert failed["trigger"]["match_related"]["prefect.resource.id"] == watched
    trigger = missed["trigger"]
    assert trigger["posture"] == "Proactive"
    assert trigger["expect"] == ["prefect.flow-run.Completed"]
    assert "prefect.flow-run.Completed" in trigger["after"]  # the window restarts per night
    assert trigger["within"] == 26 * 3600
    assert trigger["match_related"]["prefect.resource.id"] == watched
    assert missed["actions"][0]["type"] == "send-notification"
    assert "No flow run of zfs-offsite-backup/nightly-nas" in missed["actions"][0]["body"]
    assert zombie["trigger"]["after"] == ["prefect.flow-run.heartbeat"]
    assert zombie["trigger"]["within"] == 600
    # The zombie rule only marks the run Crashed (never by force): the failed alert reports it.
    assert [(a["type"], a["force"]) for a in zombie["actions"]] == [
        ("change-flow-run-state", False)
    ]


def test_alerts_name_a_missing_block_in_one_line(deployed: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "deployments/alerts.py", "--block", "custom-webhook/alr-no-such"],
        env={**deployed, "OFFSITE_HOST": HOST},
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "--block 'custom-webhook/alr-no-such': no such notification block" in last, last
    assert "Traceback" not in done.stderr


def test_serve_makes_every_job_under_its_own_names() -> None:
    by_name = {d.name: d for d in served_deployments("0 3 * * *", host_name=HOST)}
    assert set(by_name) == {served_name(j.name, HOST) for j in JOBS}
    assert not set(by_name) & {deployment_name(j.name, HOST) for j in JOBS}
    nightly = by_name["nightly-nas-served"]
    assert nightly.schedules[0].schedule.cron == "0 3 * * *"  # the --cron override
    assert nightly.concurrency_limit == 1
    assert by_name["on-demand-nas-served"].schedules == []
