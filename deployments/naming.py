"""Work-pool and deployment names per ZFS host, and where the installed tool lives.

One server holds the deployments of every ZFS host, so each host's names carry
its host name, and `serve`'s copies carry `-served` as well: otherwise a second
host's `prefect deploy` (or a `serve` on the same host) would overwrite the
first one's deployment. `prefect.yaml` and the systemd units spell the same
names with the variables below, which `scripts/install.sh` writes to
`/etc/default/zfs-offsite`. The variables do not start with `ZFS_OFFSITE_`:
that prefix belongs to the tool's settings.
"""

from __future__ import annotations

import os
import re
import socket

HOST_VARIABLE = "OFFSITE_HOST"  # names this host's work pool and deployments
HOME_VARIABLE = "OFFSITE_HOME"  # the install prefix; the workers' working directory
DEFAULT_HOME = "/opt/zfs-offsite"
ENV_FILE = "/etc/default/zfs-offsite"

_HOST_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def host() -> str:
    """This host's name in deployment names: $OFFSITE_HOST, else the short host name."""
    name = os.environ.get(HOST_VARIABLE) or socket.gethostname().split(".")[0].lower()
    if not _HOST_NAME.fullmatch(name):
        raise ValueError(
            f"{HOST_VARIABLE}={name!r}: use lowercase letters, digits and '-' "
            f"(set it in {ENV_FILE})"
        )
    return name


def work_pool(host_name: str) -> str:
    """The process work pool whose worker runs on that host."""
    return f"zfs-offsite-{host_name}"


def deployment_name(job: str, host_name: str) -> str:
    """A job's deployment from `prefect.yaml` for that host, e.g. `nightly-nas`."""
    return f"{job}-{host_name}"


def served_name(job: str, host_name: str) -> str:
    """The same job served by `zfs-offsite serve`: never the name `prefect.yaml` deploys."""
    return f"{deployment_name(job, host_name)}-served"
