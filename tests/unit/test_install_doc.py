"""The Install page lists every option scripts/install.sh accepts, and its usage as printed.

An admin reads docs/how-to/install.md, not the script; an option added to the
script's parser but not to the page would be one nobody finds.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install.sh"
PAGE = ROOT / "docs" / "how-to" / "install.md"


def parsed_options() -> list[str]:
    """The options of the `case` in install.sh's argument loop (`--prefix)`, `-h|--help)`)."""
    loop = SCRIPT.read_text().split("while [ $# -gt 0 ]; do", 1)[1].split("done", 1)[0]
    arms = re.findall(r"^\s*(-[-\w|]+)\)", loop, re.MULTILINE)
    return [option for arm in arms for option in arm.split("|")]


def usage_lines() -> list[str]:
    """What `install.sh --help` prints: the header lines its usage() function names."""
    script = SCRIPT.read_text()
    found = re.search(r"usage\(\) \{ sed -n '(\d+),(\d+)p'", script)
    assert found, "install.sh's usage() no longer prints header lines by number"
    first, last = int(found[1]), int(found[2])
    lines = script.splitlines()[first - 1 : last]
    return [" ".join(line.lstrip("#").split()) for line in lines]


def test_the_parser_is_found() -> None:
    assert {"--prefix", "--host", "--server", "--help"} <= set(parsed_options())


def test_every_option_install_sh_parses_has_a_row_on_the_install_page() -> None:
    rows = [line for line in PAGE.read_text().splitlines() if line.startswith("| `-")]
    # The first cell names the option(s): `--prefix DIR`, or `-h`, `--help`.
    documented = {m for row in rows for m in re.findall(r"`(-[-\w]+)[ `]", row.split("|")[1])}
    missing = [option for option in parsed_options() if option not in documented]
    assert missing == [], f"install.sh options without a row in {PAGE.name}: {missing}"


def test_the_install_page_shows_the_usage_install_sh_prints() -> None:
    page = [" ".join(line.split()) for line in PAGE.read_text().splitlines()]
    usage = usage_lines()
    assert usage[0].startswith("scripts/install.sh ")
    at = page.index(usage[0]) if usage[0] in page else -1
    assert at >= 0 and page[at : at + len(usage)] == usage, (
        f"{PAGE.name} does not show install.sh's usage: {usage}"
    )
