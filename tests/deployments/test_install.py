"""scripts/install.sh into a temporary prefix, as root: a working command built by the
system Python (not a python3, uv or pip first in PATH), the service users and the modes of
the files holding secrets, nothing but the tool (no zfs-fuse, no SSH server, the system sshd
untouched), a second run that changes nothing, and deployments whose pull step finds the
installed code, run by the worker unit's user."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.deployments import REPO, prefect
from tests.support.installed import existing_users, install_root, remove_new_users
from tests.support.systemd_unit import service

INSTALL = REPO / "scripts" / "install.sh"
HOST = "nas2"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")


@dataclass(frozen=True)
class Installed:
    root: Path
    args: list[str]
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    # mtime, mode, owner of each file after the first run: the second must keep them
    unchanged: dict[str, tuple[int, int, int, int]]

    @property
    def prefix(self) -> Path:
        return self.root / "opt"

    @property
    def shim_log(self) -> Path:
        return self.root / "path-shims.log"

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


def mtimes(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Each file's mtime, mode and owner: what a second run must not change."""
    return {
        str(p): (lambda st: (st.st_mtime_ns, st.st_mode, st.st_uid, st.st_gid))(p.lstat())
        for p in root.rglob("*")
        if ".venv" not in p.parts and "__pycache__" not in p.parts
    }


def path_shims(directory: Path, log: Path) -> str:
    """A PATH whose python3, uv and pip come first and only record that they were called.

    As on a host where root's PATH starts with a pyenv shim under /root (0700) or where a
    test set-up's uv lies around: install.sh must use none of them.
    """
    directory.mkdir()
    for tool in ("python3", "python", "uv", "pip", "pip3"):
        shim = directory / tool
        shim.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexit 1\n')
        shim.chmod(0o755)
    return f"{directory}:{os.environ['PATH']}"


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    before = existing_users()
    with install_root() as root:
        args = ["bash", str(INSTALL), "--prefix", str(root / "opt"), "--bindir", str(root / "bin")]
        args += ["--sysconfdir", str(root / "etc"), "--statedir", str(root / "var")]
        args += ["--host", HOST, "--no-packages", "--server"]
        env = clean_env(PATH=path_shims(root / "shims", root / "path-shims.log"))
        first = run(args, env=env, cwd=root)
        assert first.returncode == 0, first.stdout + first.stderr
        with (root / "etc" / "zfs-offsite.toml").open("a") as config:
            config.write("# the admin's edit\n")  # a second run must keep it
        unchanged = mtimes(root)
        second = run(args, env=env, cwd=root)
        assert second.returncode == 0, second.stdout + second.stderr
        try:
            yield Installed(root, args, first, second, unchanged)
        finally:
            remove_new_users(before)


def owner_and_mode(path: Path) -> tuple[str, str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o777


def test_the_installed_command_works_from_anywhere(installed: Installed) -> None:
    done = run([str(installed.root / "bin" / "zfs-offsite"), "--help"], env=clean_env(), cwd="/")
    assert done.returncode == 0, done.stderr
    assert "Usage: zfs-offsite" in done.stdout
    # the command runs the code in the prefix (what the pull step points at), not the checkout
    venv_python = installed.prefix / ".venv" / "bin" / "python"
    where = run([str(venv_python), "-c", "import flows; print(flows.__file__)"], cwd="/")
    assert where.stdout.strip() == str(installed.prefix / "flows" / "__init__.py")


def test_built_by_the_system_python_not_the_first_in_path(installed: Installed) -> None:
    assert not installed.shim_log.exists(), installed.shim_log.read_text()
    venv_python = installed.prefix / ".venv" / "bin" / "python"
    base = run([str(venv_python), "-c", "import sys; print(sys.base_prefix)"], cwd="/")
    system = run(["/usr/bin/python3", "-c", "import sys; print(sys.base_prefix)"], cwd="/")
    assert base.stdout == system.stdout


def test_service_users_and_the_modes_of_what_holds_secrets(installed: Installed) -> None:
    var, etc = installed.root / "var", installed.root / "etc"
    for user, home in (("zfs-offsite", var / "zfs-offsite"), ("prefect", var / "prefect-server")):
        account = pwd.getpwnam(user)
        assert account.pw_shell == "/usr/sbin/nologin"
        assert account.pw_uid < 1000  # a system user
        assert owner_and_mode(home) == (user, user, 0o750)
    assert owner_and_mode(var / "prefect-server" / "ui") == ("prefect", "prefect", 0o750)
    # the worker reads the config, nobody else; the server's env file holds the DB password
    assert owner_and_mode(etc / "zfs-offsite.toml") == ("root", "zfs-offsite", 0o640)
    assert owner_and_mode(etc / "zfs-offsite") == ("root", "prefect", 0o750)
    server_env = etc / "zfs-offsite" / "prefect-server.env"
    assert owner_and_mode(server_env) == ("root", "prefect", 0o640)
    assert owner_and_mode(installed.env_file) == ("root", "root", 0o600)
    values = dict(
        line.split("=", 1)
        for line in server_env.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert values["PREFECT_SERVER_API_HOST"] == "127.0.0.1"  # never every interface by default
    assert values["PREFECT_HOME"] == str(var / "prefect-server")
    assert values["PREFECT_SERVER_UI_STATIC_DIRECTORY"] == str(var / "prefect-server" / "ui")
    assert values["PREFECT_UI_API_URL"] == "http://127.0.0.1:4200/api"
    assert "password" in server_env.read_text().lower()  # it says what it holds


def test_a_second_run_changes_nothing_and_says_so(installed: Installed) -> None:
    assert "nothing changed" in installed.second.stdout, installed.second.stdout
    assert mtimes(installed.root) == installed.unchanged
    assert (installed.root / "etc" / "zfs-offsite.toml").read_text().endswith("edit\n")


def test_config_and_environment_file(installed: Installed) -> None:
    config = installed.root / "etc" / "zfs-offsite.toml"
    values = installed.env_file_values()
    assert values["OFFSITE_HOME"] == str(installed.prefix)
    assert values["OFFSITE_HOST"] == HOST
    assert values["ZFS_OFFSITE_CONFIG"] == str(config)


def test_another_sysconfdir_says_how_the_command_finds_its_env_file(
    installed: Installed,
) -> None:
    """Installed with --sysconfdir, the command would read /etc/default/zfs-offsite: the
    install says, on every run, which variable points it at this one, and that works."""
    advice = f"export OFFSITE_ENV_FILE={installed.env_file}"
    assert advice in installed.first.stdout, installed.first.stdout
    assert advice in installed.second.stdout, installed.second.stdout
    command = str(installed.root / "bin" / "zfs-offsite")
    followed = run(
        [command, "history", "--last"],
        env=clean_env(OFFSITE_ENV_FILE=str(installed.env_file), PREFECT_API_URL=""),
        cwd="/",
    )
    # no PREFECT_API_URL in the installed file yet: the error names the file it read
    assert str(installed.env_file) in followed.stderr, followed.stderr
    assert " /etc/default/zfs-offsite" not in followed.stderr, followed.stderr


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
    without = [a for a in installed.args if a != "--no-packages"]
    done = run(without, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = log.read_text().splitlines()
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert installs == [
        "apt-get install -y -qq --no-install-recommends python3 python3-venv openssh-client"
    ]
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

    # The worker unit, as systemd starts it (its user, its env file), runs on that pool.
    worker = service("zfs-offsite-worker.service", installed.root / "etc")
    assert worker.user == "zfs-offsite"
    argv = worker.argv
    assert argv[argv.index("--pool") + 1] == deployment["work_pool_name"] == "zfs-offsite-nas2"
    assert Path(argv[1]) == installed.prefix / ".venv" / "bin" / "prefect"

    # That worker runs a deployed flow as its user: pull step, entrypoint, settings, all
    # from the install (the weekly prune, on an empty scratch archive the user owns).
    account = pwd.getpwnam(worker.user)
    archive = installed.root / "archive"
    archive.mkdir()
    shutil.chown(archive, account.pw_uid, account.pw_gid)
    config = installed.root / "prune.toml"
    config.write_text(
        f'[source]\npool = "zot-no-such-pool"\n\n[target]\nurl = "file://{archive}"\n'
    )
    config.chmod(0o644)
    api = {k: server_env[k] for k in ("PREFECT_API_URL",)}
    worker_env = worker.env | api | {"ZFS_OFFSITE_CONFIG": str(config)}
    create = (
        "import sys\n"
        "from prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as client:\n"
        "    d = client.read_deployment_by_name(sys.argv[1])\n"
        "    print(client.create_flow_run_from_deployment(d.id).id)\n"
    )
    python = str(installed.prefix / ".venv" / "bin" / "python")
    created = run([python, "-c", create, "zfs-offsite-prune/weekly-prune-nas2"], env=server_env)
    assert created.returncode == 0, created.stderr
    flow_run_id = created.stdout.split()[-1]
    ran = run(
        [*argv[1:], "--run-once"],
        env=worker_env,
        cwd="/",
        user=worker.user,
        group=worker.group,
        extra_groups=[],
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    inspected = prefect(server_env, "flow-run", "inspect", flow_run_id, "--output", "json")
    flow_run = json.loads(inspected)
    assert flow_run["state"]["type"] == "COMPLETED", ran.stdout + ran.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--prefix", "opt/zfs-offsite"], "opt/zfs-offsite: give an absolute path"),
        (["--python", "/nonexistent/python3"], "/nonexistent/python3 not found"),
        (["--host", "NAS_1"], "host name 'NAS_1'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], named: str, tmp_path: Path) -> None:
    done = run(["bash", str(INSTALL), *args, "--no-packages"], env=clean_env(), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and named in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())  # nothing written
