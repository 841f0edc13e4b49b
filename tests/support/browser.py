"""The browser test's installation (server, deploy, worker) and page helpers."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import Pool

HOST = "lab"  # $OFFSITE_HOST of the simulated ZFS host


def artifacts_dir() -> Path:
    """Where screenshots go: $OFFSITE_TEST_ARTIFACTS (not ZFS_OFFSITE_*: settings refuse those)."""
    path = Path(os.environ.get("OFFSITE_TEST_ARTIFACTS") or "/tmp/zfs-offsite-test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_page(driver: object, name: str) -> Path:
    """A PNG of the window and the page's HTML, side by side in the artifacts directory."""
    directory = artifacts_dir()
    png = directory / f"{name}.png"
    try:
        driver.save_screenshot(str(png))  # type: ignore[attr-defined]
        (directory / f"{name}.html").write_text(driver.page_source)  # type: ignore[attr-defined]
    except Exception as exc:  # a dead browser must not hide the test's own failure
        (directory / f"{name}.error.txt").write_text(f"could not save the page: {exc}\n")
    return png


@dataclass
class Installation:
    """One simulated ZFS host deployed to a server, with its worker running."""

    env: dict[str, str]  # what a client on that host has (PREFECT_API_URL, config)
    api: str  # PREFECT_API_URL
    ui: str  # the server's UI root
    archive: Path  # the file:// target
    pool: Pool

    def call(self, method: str, path: str, body: object | None = None) -> object:
        """One request to the server's REST API, JSON in and out."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.api}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        # A server just started can answer 503 while its services come up; a busy CI box
        # can keep the answer waiting. Both bounded.
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    text = response.read()
                return json.loads(text) if text else None
            except urllib.error.HTTPError as exc:
                if exc.code != 503 or time.monotonic() > deadline:
                    raise
                time.sleep(1)


def wait_for_state(
    installation: Installation, flow_run_id: str, done: set[str], timeout: float
) -> dict[str, object]:
    """Poll the API until the flow run's state type is one of `done`; returns the run."""
    deadline = time.monotonic() + timeout
    while True:
        run = installation.call("GET", f"/flow_runs/{flow_run_id}")
        assert isinstance(run, dict)
        if run["state_type"] in done:
            return run
        assert time.monotonic() < deadline, (
            f"flow run {run['name']} still {run['state_type']} after {timeout:.0f} s"
        )
        time.sleep(1)
