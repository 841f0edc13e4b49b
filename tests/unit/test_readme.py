"""README is the landing page: short, its set-up commands first, no dead links.

The rest of the documentation is the site in docs/, which `mkdocs build
--strict` checks; README lives outside it, so its links are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_readme_is_a_landing_page_of_at_most_8_kb() -> None:
    size = len(README.read_bytes())
    assert size <= 8192, f"README.md is {size} bytes: move detail into docs/ (limit 8192)"


def test_the_demo_and_test_commands_come_first() -> None:
    first_block = README.read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands[:2] == ["sudo ./scripts/demo.sh", "sudo ./scripts/test.sh"]
    assert (ROOT / "scripts" / "demo.sh").is_file() and (ROOT / "scripts" / "test.sh").is_file()


def test_every_relative_link_in_readme_names_a_file_in_the_repository() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    relative = [link for link in links if "://" not in link]
    assert len(relative) > 10
    assert [link for link in relative if not (ROOT / link).is_file()] == []
