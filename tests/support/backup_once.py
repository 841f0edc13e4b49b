"""One real process of a concurrency test: back up every member once with the core.

Settings come from the environment, as on a host. Prints one JSON object
(member -> action and reason, or error) and exits 1 if any member failed.
"""

from __future__ import annotations

import json
import sys

from zfs_offsite.errors import ZfsOffsiteError
from zfs_offsite.jobs.backup import backup_member, discover_members
from zfs_offsite.settings import load_settings


def main() -> int:
    settings = load_settings()
    outcome: dict[str, dict[str, str]] = {}
    for member in discover_members(settings):
        try:
            result = backup_member(settings, member)
        except ZfsOffsiteError as exc:
            outcome[member.name] = {"error": str(exc), "type": type(exc).__name__}
        else:
            outcome[member.name] = {"action": result.action.value, "reason": result.reason}
    print(json.dumps(outcome))
    return 1 if any("error" in o for o in outcome.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
