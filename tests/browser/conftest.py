"""A real Chromium (Debian's `chromium` + `chromium-driver`) driven by Selenium, and a
one-host zfs-offsite installation on a real `prefect server start` for it to look at.

Selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver and runs offline:
Selenium Manager never downloads a browser or a driver. On a failure the test's
screenshots and page source land in the artifacts directory (`artifacts_dir`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.naming import work_pool
from tests.support.browser import HOST, Installation, save_page
from tests.support.prefect_server import PREFECT, prefect_server
from tests.support.services import Pool
from tests.support.tier_plugin import require

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    # Keep each phase's report on the item, so fixtures can see that the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def browser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A headless Chromium with its own profile; saves a screenshot if the test fails."""
    require(request.config, "chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Given both paths Selenium skips Selenium Manager; offline, it could not download anyway.
    monkeypatch.setenv("SE_OFFLINE", "true")
    profile = Path(tempfile.mkdtemp(prefix="zfs-offsite-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root, in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        service=Service(executable_path=str(CHROMEDRIVER), log_output=str(profile / "driver.log")),
        options=options,
    )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            save_page(driver, f"{request.node.name}-failure")
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def installation(source_pool: Pool, tmp_path: Path) -> Iterator[Installation]:
    """`prefect server start`, deployments/deploy.sh for host `lab`, and its worker."""
    archive = tmp_path / "archive"
    archive.mkdir()
    config = tmp_path / "zfs-offsite.toml"
    config.write_text(
        # No retries: the failure this test makes is permanent anyway; keep it quick.
        "retries = 0\nmax_parallel = 3\n\n"
        f'[source]\npool = "{source_pool.name}"\n\n'
        f'[target]\nurl = "file://{archive}"\n'
    )
    home = tmp_path / "prefect-home"
    home.mkdir()
    with prefect_server(home) as server_env:
        env = {
            **{
                k: v
                for k, v in server_env.items()
                if not k.startswith(("OFFSITE_", "ZFS_OFFSITE_"))
            },
            "ZFS_OFFSITE_CONFIG": str(config),
            "PREFECT_WORKER_QUERY_SECONDS": "2",  # pick a run up quickly
        }
        # The environment file scripts/install.sh writes, with the server filled in.
        env_file = tmp_path / "default-zfs-offsite"
        env_file.write_text(
            f"OFFSITE_HOME={REPO}\nOFFSITE_HOST={HOST}\nZFS_OFFSITE_CONFIG={config}\n"
            f"PREFECT_API_URL={server_env['PREFECT_API_URL']}\n"
            "PREFECT_SERVER_ANALYTICS_ENABLED=false\n"
        )
        deploy = subprocess.run(
            ["sh", str(REPO / "deployments" / "deploy.sh")],
            env={**env, "OFFSITE_ENV_FILE": str(env_file)},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert deploy.returncode == 0, f"deploy.sh:\n{deploy.stdout}\n{deploy.stderr}"
        worker_log = (home / "worker.log").open("wb")
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", work_pool(HOST), "--type", "process"],
            env=env,
            cwd=REPO,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        api = server_env["PREFECT_API_URL"]
        inst = Installation(env, api, api.removesuffix("/api"), archive, source_pool)
        try:
            pause_schedules(inst)
            yield inst
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            worker_log.close()
            for line in (home / "worker.log").read_text(errors="replace").splitlines()[-40:]:
                print("worker:", line)


def pause_schedules(inst: Installation) -> None:
    """No night or weekly job may fire during the test (CI runs at any hour)."""
    deployments = inst.call("POST", "/deployments/filter", {})
    assert isinstance(deployments, list)
    for d in deployments:
        for schedule in d["schedules"]:
            inst.call(
                "PATCH", f"/deployments/{d['id']}/schedules/{schedule['id']}", {"active": False}
            )
