"""Which datasets the tool created: a user property set at creation, read before a destroy.

A name alone proves nothing: an admin may restore into `tank/restore/alice`
by hand, or with this tool, and then work in it. So every dataset the tool
creates (a drill's scratch dataset, a restore destination) carries the user
property `MARK` = `zfs-offsite <purpose> <run>`, set locally on that dataset
at creation (`zfs receive -o` where the ZFS has it, else `zfs set` right after
the receive created it). The drill destroys only a dataset whose own (not
inherited) mark says `drill`: a restore's mark is an admin's restored data.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from zfs_offsite.zfs.commands import RECEIVE_OPTION_PROBE, mark_argv
from zfs_offsite.zfs.runner import Runner

TOOL = "zfs-offsite"
DRILL = "drill"  # `<scratch>/<member>`: received, proven, destroyed by the drill
DRILL_PARENT = "drill-parent"  # the scratch parent the drill created; never destroyed
RESTORE = "restore"  # a restore destination: the admin's data once restored


@dataclass(frozen=True)
class Mark:
    """What the tool wrote into `MARK` when it created a dataset."""

    purpose: str
    run: str

    @property
    def value(self) -> str:
        """`zfs-offsite <purpose> <run>`; whitespace in the run is replaced (three words)."""
        return f"{TOOL} {self.purpose} {'-'.join(self.run.split()) or 'unnamed'}"


def new_run_id() -> str:
    """A run name for the mark when the caller has none (no orchestrator run id)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def parse_mark(value: str, source: str) -> Mark | None:
    """The mark from `zfs get -o value,source`, or None: unset, inherited or not ours.

    Inherited values do not count: user properties pass down to children, and
    a child the admin made below a marked dataset is not the tool's.
    """
    if source.strip() != "local":
        return None
    parts = value.strip().split(" ")
    if len(parts) != 3 or parts[0] != TOOL or not parts[1] or not parts[2]:
        return None
    return Mark(parts[1], parts[2])


def read_mark(runner: Runner, dataset: str) -> Mark | None:
    """The dataset's own mark, or None (no mark, inherited, or the dataset is gone)."""
    result = runner.run(mark_argv(dataset), check=False)
    if result.returncode != 0:
        return None
    value, _, source = result.stdout.rstrip("\n").partition("\t")
    return parse_mark(value, source)


def is_mine(runner: Runner, dataset: str, purpose: str) -> bool:
    """True only if the tool created `dataset` for `purpose` (its own mark says so)."""
    mark = read_mark(runner, dataset)
    return mark is not None and mark.purpose == purpose


def knows_receive_option(stderr: str) -> bool:
    """True if the probe failed over the missing dataset, i.e. `-o` itself was accepted.

    Any other answer means no `-o`: the mark is then set with `zfs set`, which
    every ZFS has, so a message never seen costs a second command, not the mark.
    """
    if "invalid option" in stderr:
        return False
    # OpenZFS checks the argument count first, and stdin being a terminal after it.
    return "missing" in stderr or "read from a terminal" in stderr


def detect_receive_option(runner: Runner) -> bool:
    """Whether this host's `zfs receive` sets properties with `-o`: asked, not assumed."""
    result = runner.run(list(RECEIVE_OPTION_PROBE), check=False)
    return result.returncode != 0 and knows_receive_option(result.stderr)
