"""Which tier a test belongs to, what its services need, and how long each tier took.

Plain `pytest` (no path on the command line) runs the fast tier only: the tests
a developer can run as any user on any machine, in well under a minute. A test
is in it unless it needs a service: a fixture that starts or reaches one
(`SERVICE_FIXTURES`), a tier marker (`integration`, `openzfs_vm`, `slow`), or,
outside tests/unit, a `skipif` (a test that depends on who runs it, e.g. as
root, belongs with the root tiers, so scripts/test.sh runs every test exactly
once). Deciding by fixtures rather than by a list of files keeps the split
true by itself: a new test in tests/cli that needs no service is fast without
anyone editing this file, and one that takes `zfs_fuse` leaves the fast tier.

The root tiers are the folders under tests/ (integration, flows, ...): run one
with `pytest tests/<folder>`. A service they need that is missing skips the
test with a reason naming it (`missing`), or fails it under
`--require-services` (CI: a broken machine must never look green).
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

FAST = "fast"  # the marker put on every fast-tier test at collection

# Fixtures that start or reach a service; a test that needs any of them is not fast.
SERVICE_FIXTURES = frozenset(
    {
        "zfs_fuse",  # root, zfs-fuse (every pool)
        "sshd",  # root, OpenSSH's sshd
        "prefect",  # the Prefect test server (flows, faults)
        "server_env",  # a `prefect server start` (deployments)
        "browser",  # chromium + chromedriver
        "installation",
        "server",  # PostgreSQL + prefect server (operations)
        "hosts",
        "vm_known_hosts",  # the OpenZFS VM
        "vm",
        "rgw",  # a single-node Ceph RGW (tests/support/rgw.py)
    }
)
TIER_MARKERS = frozenset({"integration", "openzfs_vm", "slow"})
UNIT = "unit"

# Modules that run the installed `zfs-offsite` command in subprocesses: each test
# starts Python and imports Prefect (2-10 s on a busy machine), so they would
# double the fast tier's time. They need no service and run in their folder's tier
# (`pytest tests/cli` as any user). Paths under tests/; tests/unit checks they exist.
ENTRY_POINT_MODULES = frozenset(
    {
        "cli/test_config_command.py",
        "cli/test_keygen_command.py",
        "deployments/test_serve.py",
    }
)


def is_fast(
    module: str, fixtures: Iterable[str], markers: Iterable[str], conditional: bool
) -> bool:
    """True for a test in the fast tier: no service fixture, no tier marker.

    `module`: its path under tests/ (`unit/plan/test_backup.py`). `conditional`:
    the test carries a `skipif`; outside tests/unit that makes it a root-tier test
    (it runs as root in CI, never skipped there).
    """
    if SERVICE_FIXTURES.intersection(fixtures) or TIER_MARKERS.intersection(markers):
        return False
    if module in ENTRY_POINT_MODULES:
        return False
    return module.startswith(f"{UNIT}/") or not conditional


def module_of(path: Path, tests_dir: Path) -> str:
    """A test file's path under tests/, with `/` (`unit/plan/test_backup.py`)."""
    return path.resolve().relative_to(tests_dir.resolve()).as_posix()


def tier_of(module: str) -> str:
    """The folder under tests/ a test module lives in (`unit`, `integration`, ...)."""
    return module.split("/", 1)[0] if "/" in module else "tests"


# The programs tests/support/rgw.py runs to start its single-node Ceph RGW.
CEPH_PROGRAMS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")

# What each need is, and where it comes from, for the skip reason.
SETUP = "scripts/setup-system.sh installs it"


def missing(
    need: str,
    *,
    euid: int | None = None,
    which: Callable[[str], str | None] = shutil.which,
    exists: Callable[[str], bool] = os.path.exists,
    matches: Callable[[str], list[str]] = glob.glob,
) -> str | None:
    """Why `need` cannot be had on this machine, in one line; None when it can.

    Needs: `root`, `zfs-fuse`, `sshd`, `chromium`, `postgresql`, `ceph`. The caller
    skips (or, under --require-services, fails) the test with the reason.
    """
    euid = os.geteuid() if euid is None else euid
    if need == "root":
        return (
            None if euid == 0 else "not root: run this tier as root (sudo), as scripts/test.sh does"
        )
    if need == "zfs-fuse":
        return (
            None if which("zfs-fuse") else f"no zfs-fuse binary: {SETUP} (apt-get install zfs-fuse)"
        )
    if need == "sshd":
        found = which("sshd") or exists("/usr/sbin/sshd")
        return None if found else f"no sshd binary: {SETUP} (apt-get install openssh-server)"
    if need == "chromium":
        both = exists("/usr/bin/chromium") and exists("/usr/bin/chromedriver")
        return None if both else f"no chromium/chromedriver: {SETUP} (chromium chromium-driver)"
    if need == "postgresql":
        found = bool(matches("/usr/lib/postgresql/*/bin/initdb"))
        return (
            None
            if found
            else f"no PostgreSQL server binaries: {SETUP} (apt-get install postgresql)"
        )
    if need == "ceph":
        absent = [name for name in CEPH_PROGRAMS if not which(name)]
        return (
            None
            if not absent
            else f"no Ceph RGW ({', '.join(absent)} missing): {SETUP} "
            "(apt-get install ceph-mon ceph-osd radosgw ceph-common)"
        )
    raise ValueError(f"unknown need {need!r}")


@dataclass
class TierClock:
    """Wall time per tier in one pytest run: first test's start to last test's end.

    pytest runs the folders one after another, so the tiers' times add up to the
    run's; a session fixture's start-up counts in the tier whose test needed it first.
    """

    spans: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    def started(self, tier: str) -> None:
        now = self.clock()
        span = self.spans.setdefault(tier, [now, now])
        span[0] = min(span[0], now)
        self.counts[tier] = self.counts.get(tier, 0) + 1

    def finished(self, tier: str) -> None:
        now = self.clock()
        span = self.spans.setdefault(tier, [now, now])
        span[1] = max(span[1], now)

    def lines(self) -> list[str]:
        """One line per tier, in the order they ran: name, tests, seconds."""
        ordered = sorted(self.spans.items(), key=lambda item: item[1][0])
        return [
            f"{tier:<12} {self.counts.get(tier, 0):>5} tests {end - start:>8.1f} s"
            for tier, (start, end) in ordered
        ]
