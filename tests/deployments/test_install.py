"""scripts/install.sh into a temporary prefix, as root: a working command, nothing but
the tool (no zfs-fuse, no SSH server, the system sshd untouched), a second run that
changes nothing, and deployments whose pull step finds the installed code."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.deployments import REPO, prefect

INSTALL = REPO / "scripts" / "install.sh"
HOST = "nas2"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")


@dataclass(frozen=True)
class Installed:
    root: Path
    args: list[str]
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    unchanged: dict[str, int]  # mtimes after the first run that the second must keep

    @property
    def prefix(self) -> Path:
        return self.root / "opt"

    @property
    def env_file(self) -> Path:
        return self.root / "etc" / "default" / "zfs-offsite"

    def env_file_values(self) -> dict[str, str]:
        lines = self.env_file.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("OFFSITE_", "ZFS_OFFSITE_"))}
    return {**keep, **extra}


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload, no-any-return]


def mtimes(root: Path) -> dict[str, int]:
    return {
        str(p): p.lstat().st_mtime_ns
        for p in root.rglob("*")
        if ".venv" not in p.parts and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    args = ["bash", str(INSTALL), "--prefix", str(root / "opt"), "--bindir", str(root / "bin")]
    args += ["--sysconfdir", str(root / "etc"), "--host", HOST, "--no-packages"]
    first = run(args, env=clean_env(), cwd=root)
    assert first.returncode == 0, first.stdout + first.stderr
    with (root / "etc" / "zfs-offsite.toml").open("a") as config:
        config.write("# the admin's edit\n")  # a second run must keep it
    unchanged = mtimes(root)
    second = run(args, env=clean_env(), cwd=root)
    assert second.returncode == 0, second.stdout + second.stderr
    return Installed(root, args, first, second, unchanged)


def test_the_installed_command_works_from_anywhere(installed: Installed) -> None:
    done = run([str(installed.root / "bin" / "zfs-offsite"), "--help"], env=clean_env(), cwd="/")
    assert done.returncode == 0, done.stderr
    assert "Usage: zfs-offsite" in done.stdout
    # the command runs the code in the prefix (what the pull step points at), not the checkout
    venv_python = installed.prefix / ".venv" / "bin" / "python"
    where = run([str(venv_python), "-c", "import flows; print(flows.__file__)"], cwd="/")
    assert where.stdout.strip() == str(installed.prefix / "flows" / "__init__.py")


def test_a_second_run_changes_nothing_and_says_so(installed: Installed) -> None:
    assert "nothing changed" in installed.second.stdout
    assert mtimes(installed.root) == installed.unchanged
    assert (installed.root / "etc" / "zfs-offsite.toml").read_text().endswith("edit\n")


def test_config_and_environment_file(installed: Installed) -> None:
    config = installed.root / "etc" / "zfs-offsite.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    values = installed.env_file_values()
    assert values["OFFSITE_HOME"] == str(installed.prefix)
    assert values["OFFSITE_HOST"] == HOST
    assert values["ZFS_OFFSITE_CONFIG"] == str(config)


def test_installs_only_run_time_packages_and_never_touches_sshd(
    installed: Installed, tmp_path: Path
) -> None:
    """apt-get, dpkg-query and systemctl replaced by recorders: what would it run?"""
    shims = tmp_path / "shims"
    shims.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("apt-get", "apt", "dpkg-query", "systemctl", "service", "invoke-rc.d"):
        shim = shims / tool
        # dpkg-query: every package looks missing, so every needed one gets installed
        shim.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexit 0\n')
        shim.chmod(0o755)
    env = clean_env(PATH=f"{shims}:{os.environ['PATH']}")
    done = run(installed.args[:-1], env=env, cwd=tmp_path)  # without --no-packages
    assert done.returncode == 0, done.stdout + done.stderr
    calls = log.read_text().splitlines()
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert installs == ["apt-get install -y -qq --no-install-recommends python3 openssh-client"]
    assert not [c for c in calls if c.split()[0] in ("systemctl", "service", "invoke-rc.d")]
    # and the script has no command line that could do either
    code = [ln for ln in INSTALL.read_text().splitlines() if not ln.lstrip().startswith("#")]
    for word in ("zfs-fuse", "openssh-server", "systemctl", "ssh.service", "sshd"):
        assert not [ln for ln in code if word in ln], word


def test_deploy_from_the_install_runs_where_the_code_is(
    installed: Installed, server_env: dict[str, str], tmp_path: Path
) -> None:
    """deploy.sh with the installed environment file, then a run by the unit's worker."""
    env = {**server_env, "OFFSITE_ENV_FILE": str(installed.env_file)}
    done = run([str(installed.prefix / "deployments" / "deploy.sh")], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    name = "zfs-offsite-backup/nightly-nas2"
    deployment = json.loads(prefect(server_env, "deployment", "inspect", name, "--output", "json"))
    step = deployment["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    assert step["directory"] == str(installed.prefix)

    # The worker unit, with the environment file filled in, starts a worker on that pool.
    unit = (REPO / "deployments" / "systemd" / "zfs-offsite-worker.service").read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    values = installed.env_file_values()
    argv = re.sub(r"\$\{(\w+)\}", lambda m: values[m[1]], exec_start).split()
    assert argv[argv.index("--pool") + 1] == deployment["work_pool_name"] == "zfs-offsite-nas2"
    assert Path(argv[1]) == installed.prefix / ".venv" / "bin" / "prefect"
    assert Path(argv[1]).exists()

    # That worker runs a deployed flow: pull step, entrypoint, settings, all from the
    # install (the weekly prune, on an empty scratch archive: quick and harmless).
    archive = tmp_path / "archive"
    archive.mkdir()
    config = tmp_path / "zfs-offsite.toml"
    config.write_text(
        f'[source]\npool = "zot-no-such-pool"\n\n[target]\nurl = "file://{archive}"\n'
    )
    worker_env = {**server_env, **values, "ZFS_OFFSITE_CONFIG": str(config)}
    create = (
        "import sys\n"
        "from prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as client:\n"
        "    d = client.read_deployment_by_name(sys.argv[1])\n"
        "    print(client.create_flow_run_from_deployment(d.id).id)\n"
    )
    python = str(installed.prefix / ".venv" / "bin" / "python")
    created = run([python, "-c", create, "zfs-offsite-prune/weekly-prune-nas2"], env=worker_env)
    assert created.returncode == 0, created.stderr
    flow_run_id = created.stdout.split()[-1]
    worker = run([*argv[1:], "--run-once"], env=worker_env, cwd="/")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    inspected = prefect(server_env, "flow-run", "inspect", flow_run_id, "--output", "json")
    flow_run = json.loads(inspected)
    assert flow_run["state"]["type"] == "COMPLETED", worker.stdout + worker.stderr
