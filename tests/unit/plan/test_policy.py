"""The retention policy grammar, on its own: settings validate with it and nothing else."""

from __future__ import annotations

import subprocess
import sys


def test_every_unit_parses_with_only_the_grammar_imported() -> None:
    # A fresh interpreter: in this one other modules are already imported.
    code = (
        "from zfs_offsite.plan.policy import parse_policy\n"
        "rules = parse_policy('hourly 48h, daily 7d, weekly 8w, monthly 12m, yearly 2y')\n"
        "print([r.age.days for r in rules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[2, 7, 56, 372, 732]"
