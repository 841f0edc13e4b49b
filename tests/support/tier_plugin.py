"""The pytest side of the tiers: select plain `pytest`'s fast tier, time every tier.

Registered by tests/conftest.py. The rules it applies are in tiers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiers import FAST, TierClock, is_fast, missing, module_of, tier_of


def add_tier_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("zfs-offsite tiers")
    group.addoption(
        "--tier",
        choices=("fast", "root", "all"),
        default=None,
        help="fast: the hermetic tier (the default when no path is given); root: every "
        "other test; all: both (the default when a path is given)",
    )
    group.addoption(
        "--require-services",
        action="store_true",
        help="fail, not skip, a test whose service (root, zfs-fuse, sshd, ...) is missing (CI)",
    )


class TierPlugin:
    """Marks and selects the fast tier at collection; prints each tier's wall time."""

    def __init__(self, config: pytest.Config, tests_dir: Path) -> None:
        self.config = config
        self.tests_dir = tests_dir
        self.clock = TierClock()
        self.tiers: dict[str, str] = {}  # node id -> folder under tests/

    def selected(self) -> str:
        """--tier, else `fast` for plain `pytest` (the testpaths), `all` for a named path."""
        chosen: str | None = self.config.getoption("--tier")
        if chosen:
            return chosen
        from_testpaths = self.config.args_source == pytest.Config.ArgsSource.TESTPATHS
        return "fast" if from_testpaths else "all"

    def pytest_report_header(self) -> str:
        tier = self.selected()
        if tier == "fast":
            return "tier: fast (plain pytest); the others: pytest tests/<folder>, scripts/test.sh"
        return f"tier: {tier}"

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        tier = self.selected()
        keep: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            module = module_of(item.path, self.tests_dir)
            self.tiers[item.nodeid] = tier_of(module)
            fast = is_fast(
                module,
                getattr(item, "fixturenames", ()),
                {mark.name for mark in item.iter_markers()},
                conditional=item.get_closest_marker("skipif") is not None,
            )
            if fast:
                item.add_marker(FAST)
            wanted = tier == "all" or (tier == "fast") == fast
            (keep if wanted else dropped).append(item)
        if dropped:
            self.config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.clock.started(self.tiers.get(nodeid, "tests"))

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.clock.finished(self.tiers.get(nodeid, "tests"))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        lines = self.clock.lines()
        if lines:
            terminalreporter.write_sep("=", "wall time per tier")
            for line in lines:
                terminalreporter.write_line(line)


def require(config: pytest.Config, *needs: str) -> None:
    """Skip the test naming the first missing need, or fail it under --require-services."""
    for need in needs:
        reason = missing(need)
        if reason is None:
            continue
        if config.getoption("--require-services"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
