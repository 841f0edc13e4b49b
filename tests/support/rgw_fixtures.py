"""The RGW fixtures of every tier that needs a store (tests/s3, tests/faults).

A pytest plugin registered by tests/conftest.py, so a run of both tiers starts
one store, not one per folder: one store per test session (~4 s to start,
~140 MB); each test gets a bucket of its own, so tests never see each other's
objects, uploads or quotas.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.rgw import Rgw, RgwError, start, stop
from tests.support.tier_plugin import require

# Fixed ports for a run by hand next to other stores (PORT..PORT+9); a free block otherwise.
PORT_BASE_ENV = "TEST_RGW_PORT_BASE"


@pytest.fixture(scope="session")
def rgw(request: pytest.FixtureRequest) -> Iterator[Rgw]:
    """A running single-node RGW; stopped (its processes killed, its files gone) at the
    end of the session, whatever the tests did."""
    require(request.config, "root", "ceph")
    base = os.environ.get(PORT_BASE_ENV)
    try:
        store = start(port_base=int(base) if base else None)
    except RgwError as error:
        pytest.fail(f"the Ceph RGW did not start: {error}", pytrace=False)
    try:
        yield store
    finally:
        stop(Path(store.directory))


@pytest.fixture
def bucket(rgw: Rgw) -> str:
    """A new, empty bucket for one test."""
    name = f"t-{secrets.token_hex(6)}"
    rgw.create_bucket(name)
    return name


@pytest.fixture
def aws_env(rgw: Rgw, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The store's keys in the standard AWS variables, and no shared file from the caller."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rgw.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rgw.secret_key)
