"""docs/how-to/pull-mode.md names what the code names: one host name for everything.

The how-to tells an admin which names to type (`OFFSITE_HOST`, `prefect gcl
create zfs-send-…`, `deployment run '…/nightly-…'`); a name the code does not
look for silently does nothing (a limit nobody acquires), so each is derived
here from the doc's own `source.ssh_url` the way the flows derive it.
"""

from __future__ import annotations

import re
from pathlib import Path

from cli.server_config import DEFAULT_ENV_FILE, ENV_FILE_ENV
from deployments.naming import deployment_name, work_pool
from flows.schedules import NIGHTLY_CRON, TIMEZONE
from tests.deployments.test_install_paths import shell_default
from zfs_offsite.connect import host_label
from zfs_offsite.report.run_report import artifact_key, send_limit_name
from zfs_offsite.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "how-to" / "pull-mode.md").read_text()


def one(pattern: str) -> str:
    found = set(re.findall(pattern, DOC))
    assert len(found) == 1, (pattern, found)
    return found.pop()


def test_every_name_in_the_how_to_is_the_one_the_code_uses() -> None:
    ssh_url = one(r"`source\.ssh_url` \(`(ssh://[^`]+)`\)")
    label = host_label(load_settings(source={"ssh_url": ssh_url}))
    assert one(r"OFFSITE_HOST=([a-z0-9-]+)") == label
    assert one(r"install\.sh --host ([a-z0-9-]+)") == label
    assert one(r"prefect gcl create (\S+)") == send_limit_name(label)
    nightly = deployment_name("nightly", label)
    assert one(r"deployment run 'zfs-offsite-backup/([^']+)'") == nightly
    assert f"| work pool | `{work_pool(label)}` |" in DOC
    assert f"| send limit | `{send_limit_name(label)}` |" in DOC
    assert f"| artifacts | `{artifact_key('backup', label)}`" in DOC
    assert f"runs `backup-{label}-" in DOC


def test_the_schedule_it_states_is_the_one_deployed() -> None:
    hour, minute = NIGHTLY_CRON.split()[1], NIGHTLY_CRON.split()[0]
    words = " ".join(DOC.split())  # the sentence as read, wherever its lines wrap
    assert f"at {int(hour):02d}:{int(minute):02d} {TIMEZONE}" in words


def test_the_example_config_it_installs_exists_and_is_linked() -> None:
    example = one(r"/opt/zfs-offsite/(deployments/zfs-offsite\.pull\.example\.toml)")
    assert (ROOT / example).is_file()
    assert "../docs/how-to/pull-mode.md" in (ROOT / "deployments" / "README.md").read_text()


def test_the_readme_links_the_how_to_where_it_is() -> None:
    assert "docs/how-to/pull-mode.md" in (ROOT / "README.md").read_text()


def test_the_directories_it_names_are_the_ones_install_sh_uses() -> None:
    """An admin who installs elsewhere substitutes what the table says: it must be install.sh's
    own defaults, and the variable it names must be the one the command reads."""
    for option, variable in (
        ("--prefix", "prefix"),
        ("--bindir", "bindir"),
        ("--sysconfdir", "sysconfdir"),
        ("--statedir", "statedir"),
    ):
        assert f"--{variable})" in (ROOT / "scripts" / "install.sh").read_text()
        default = shell_default("scripts/install.sh", variable)
        assert f"| `{option}` | `{default}` |" in DOC, option
    assert f"export {ENV_FILE_ENV}=<sysconfdir>/default/zfs-offsite" in DOC
    assert str(DEFAULT_ENV_FILE) == "/etc/default/zfs-offsite"  # what the sentence says it reads
