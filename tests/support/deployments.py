"""Running the `prefect` CLI against a test server, as deploy.sh would on a host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


PREFECT = str(Path(sys.executable).with_name("prefect"))


HOST = "nas"  # $OFFSITE_HOST as /etc/default/zfs-offsite would set it


def prefect(env: dict[str, str], *args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(
        [PREFECT, "--no-prompt", *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout
