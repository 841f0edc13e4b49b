"""The central server as installed: scripts/install.sh --server, the shipped
prefect-server.service run as systemd would run it (its ExecStart, its EnvironmentFiles,
its User=) on a private PostgreSQL, with the API's basic auth switched on as
deployments/README.md says. Then: a request without credentials gets 401; deploy.sh and
the shipped worker unit (user zfs-offsite) work with the credentials from the host's env
file; Chromium logs in and shows the deployment, not a connection error (screenshot kept).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from deployments.naming import deployment_name, work_pool
from tests.support.browser import HOST, save_page
from tests.support.installed import existing_users, install_root, remove_new_users
from tests.support.postgres import postgres_cluster
from tests.support.services import free_port
from tests.support.systemd_unit import service

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UI_WAIT = 90  # seconds for one element of the UI on this busy box


def set_variable(path: Path, name: str, value: str) -> None:
    """The admin's edit of an env file: `NAME=value`, replacing a (commented) line of it."""
    text = path.read_text()
    line = f"{name}={value}"
    pattern = re.compile(rf"^#?{name}=.*$", re.M)
    text = pattern.sub(line, text, count=1) if pattern.search(text) else text + line + "\n"
    path.write_text(text)


@dataclass
class Server:
    root: Path  # install.sh's --prefix/--sysconfdir/--statedir live below it
    api: str  # PREFECT_API_URL as the browser and the hosts reach it
    auth: str  # user:password of the API's basic auth
    log: Path

    @property
    def ui(self) -> str:
        return self.api.removesuffix("/api")

    def call(self, method: str, path: str, body: object = None, auth: bool = True) -> object:
        """One REST call, with the basic-auth header unless `auth` is False."""
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(self.auth.encode()).decode()
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api}{path}", data, headers, method=method)
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read()
        return json.loads(text) if text else None


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    before = existing_users()
    with install_root() as root, postgres_cluster() as database:
        try:
            yield from _installed_server(root, database)
        finally:
            remove_new_users(before)


def _installed_server(root: Path, database: str) -> Iterator[Server]:
    etc = root / "etc"
    args = ["bash", str(REPO / "scripts" / "install.sh"), "--server", "--no-packages"]
    args += ["--prefix", str(root / "opt"), "--bindir", str(root / "bin")]
    args += ["--sysconfdir", str(etc), "--statedir", str(root / "var"), "--host", HOST]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OFFSITE_"))}
    done = subprocess.run(args, env=clean, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr

    # The admin's edits, as deployments/README.md tells them.
    port, auth = free_port(), f"admin:{secrets.token_urlsafe(16)}"
    api = f"http://127.0.0.1:{port}/api"
    server_env = etc / "zfs-offsite" / "prefect-server.env"
    set_variable(server_env, "PREFECT_API_DATABASE_CONNECTION_URL", database)
    set_variable(server_env, "PREFECT_SERVER_API_PORT", str(port))
    set_variable(server_env, "PREFECT_UI_API_URL", api)
    set_variable(server_env, "PREFECT_SERVER_API_AUTH_STRING", auth)
    host_env = etc / "default" / "zfs-offsite"
    set_variable(host_env, "PREFECT_API_URL", api)
    set_variable(host_env, "PREFECT_API_AUTH_STRING", auth)

    unit = service("prefect-server.service", etc)
    assert unit.user == "prefect"
    log = root / "prefect-server.log"
    process = unit.start(log)
    result = Server(root, api, auth, log)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not start:\n{log.read_text()[-4000:]}")
                time.sleep(1)
        deploy = subprocess.run(
            [str(root / "opt" / "deployments" / "deploy.sh")],
            env=clean | {"OFFSITE_ENV_FILE": str(host_env), "PREFECT_HOME": str(root / "admin")},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        pause_schedules(result)  # nothing may fire while the tests look
        yield result
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        print(log.read_text(errors="replace")[-3000:])


def pause_schedules(server: Server) -> None:
    deployments = server.call("POST", "/deployments/filter", {})
    assert isinstance(deployments, list)
    for d in deployments:
        for schedule in d["schedules"]:
            path = f"/deployments/{d['id']}/schedules/{schedule['id']}"
            server.call("PATCH", path, {"active": False})


def test_the_api_needs_the_credentials(server: Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.call("POST", "/deployments/filter", {}, auth=False)
    assert refused.value.code == 401
    deployments = server.call("POST", "/deployments/filter", {})
    assert isinstance(deployments, list)
    assert f"nightly-{HOST}" in {d["name"] for d in deployments}
    # and it listens where the env file says: this host only
    assert "0.0.0.0" not in server.log.read_text()


def test_the_server_unit_serves_its_ui_as_its_user(server: Server) -> None:
    text = server.log.read_text(errors="replace")
    assert "Permission denied" not in text, text[-3000:]
    assert "will not be available" not in text, text[-3000:]
    with urllib.request.urlopen(server.ui + "/", timeout=60) as page:
        assert page.status == 200
    ui = server.root / "var" / "prefect-server" / "ui"
    assert any(ui.rglob("index.html")), f"the UI's files are not in {ui}"


def test_the_worker_unit_connects_with_the_credentials(server: Server) -> None:
    worker = service("zfs-offsite-worker.service", server.root / "etc")
    assert worker.user == "zfs-offsite"
    log = server.root / "worker.log"
    process = worker.start(log)
    pool = work_pool(HOST)
    try:
        deadline = time.monotonic() + 180
        while True:
            workers = server.call("POST", f"/work_pools/{pool}/workers/filter", {})
            assert isinstance(workers, list)
            if [w for w in workers if w["name"] == pool]:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker never reached the server:\n{log.read_text()[-3000:]}")
            time.sleep(2)
    finally:
        # `systemctl stop`: the unit's KillSignal to the whole group, SIGKILL after
        # TimeoutStopSec; the worker must end by itself before that.
        (kill_signal,) = worker.settings["KillSignal"]
        (stop_seconds,) = worker.settings["TimeoutStopSec"]
        os.killpg(process.pid, signal.Signals[kill_signal])
        try:
            process.wait(timeout=int(stop_seconds))
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            killed = True
    assert not killed, f"the worker outlived TimeoutStopSec={stop_seconds}"
    assert "401" not in log.read_text(errors="replace")


def test_chromium_logs_in_and_shows_the_deployment(server: Server, browser: WebDriver) -> None:
    driver = browser
    driver.get(f"{server.ui}/deployments")
    password = WebDriverWait(driver, UI_WAIT).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "input[type=password]")),
        "no login form: is the API's basic auth on?",
    )
    password.send_keys(server.auth)
    driver.find_element(By.XPATH, "//button[@type='submit']").click()
    WebDriverWait(driver, UI_WAIT).until(
        lambda d: "/login" not in d.current_url, "the login did not go through"
    )
    driver.get(f"{server.ui}/deployments")
    name = deployment_name("nightly", HOST)
    WebDriverWait(driver, UI_WAIT).until(
        lambda d: any(
            e.is_displayed() for e in d.find_elements(By.XPATH, f"//*[normalize-space(.)='{name}']")
        ),
        f"the deployments page does not show {name}",
    )
    assert "Can't connect" not in driver.page_source
    save_page(driver, "server-as-installed-deployments")
