"""The docs site's strict build fails on a broken link or anchor, not only on a missing page.

scripts/test.sh builds the real site with `mkdocs build --strict`; this test
proves that build would catch what readers hit: a copy of the site with one
link to a missing page and one to a missing heading must fail, naming both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path: Path) -> None:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    index = tmp_path / "docs" / "index.md"
    index.write_text(
        index.read_text()
        + "\n[gone](how-to/no-such-page.md) [no heading](how-to/restore.md#no-such-heading)\n"
    )
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    warnings = [line for line in built.stderr.splitlines() if line.startswith("WARNING")]
    assert built.returncode != 0
    assert [w for w in warnings if "'how-to/no-such-page.md'" in w] != []
    assert [w for w in warnings if "'#no-such-heading'" in w] != []
