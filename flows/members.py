"""The `members` parameter of a flow: each name checked, a name that does not exist refused.

A name typed into the Prefect UI's run form reaches the flow unchecked; it passes
the one member-name rule (`archive.names.check_member_name`) and must name
something that exists, or the run fails at once with a ConfigError naming it.
"""

from __future__ import annotations

from zfs_offsite.archive.names import check_member_name
from zfs_offsite.errors import ConfigError


def checked_members(wanted: list[str]) -> list[str]:
    """The `members` parameter, each name checked by the one member-name rule (ConfigError)."""
    return [check_member_name(name, "parameter members:") for name in wanted]


def only_known(names: list[str], wanted: list[str], what: str) -> list[str]:
    """`wanted` out of `names` (all if empty); a name that does not exist is a ConfigError."""
    if not wanted:
        return names
    checked_members(wanted)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ConfigError(f"parameter members: no {what} named {', '.join(unknown)}")
    return [n for n in names if n in wanted]
