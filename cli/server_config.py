"""Which Prefect server a command talks to: the environment, Prefect's profile, or the host's file.

`scripts/install.sh` writes the central server's address (and its basic-auth
string) into `/etc/default/zfs-offsite`, which the systemd units read. A
command typed in a root shell reads it too, so a manual run lands in the
same history as the nightly ones instead of in a temporary server. What the
environment (or `prefect config set`) names wins: the file is used only when
neither names a server, and then its URL and auth string are used together,
never one of them with another server's other half. `OFFSITE_ENV_FILE`
points at another file (tests, a second install).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV_FILE_ENV = "OFFSITE_ENV_FILE"
DEFAULT_ENV_FILE = Path("/etc/default/zfs-offsite")
URL_KEY = "PREFECT_API_URL"
AUTH_KEY = "PREFECT_API_AUTH_STRING"
ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def env_file() -> Path:
    """The host's env file: `$OFFSITE_ENV_FILE`, else /etc/default/zfs-offsite."""
    return Path(os.environ.get(ENV_FILE_ENV) or DEFAULT_ENV_FILE)


def parse_env_file(text: str) -> dict[str, str]:
    """`KEY=value` lines as systemd's EnvironmentFile reads them: comments, quotes stripped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = ASSIGNMENT.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        value = match[2].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[match[1]] = value
    return values


@dataclass(frozen=True)
class ServerChoice:
    """The server a command uses (empty: none named) and where that came from."""

    url: str
    origin: str  # "the environment", "Prefect's profile", "/etc/default/zfs-offsite", ""
    problem: str = ""  # the env file exists but could not be read

    @property
    def line(self) -> str:
        """The line a command prints: `Prefect server: http://nas:4200/api (from …)`."""
        return f"Prefect server: {shown_url(self.url)} (PREFECT_API_URL from {self.origin})"


def shown_url(url: str) -> str:
    """The URL without a `user:password@` part: nothing secret on the terminal."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_chosen: ServerChoice | None = None  # once per process: the file's URL is in os.environ after


def choose_server() -> ServerChoice:
    """Apply the env file's server to this process unless one is named already; say which.

    Call it before Prefect reads its settings for the command (it refreshes
    them when it changes the environment). The first answer is kept: once the
    file's URL is in the environment, the environment is not where it came from.
    """
    global _chosen
    if _chosen is None:
        _chosen = _choose()
    return _chosen


def _choose() -> ServerChoice:
    if os.environ.get(URL_KEY):
        return ServerChoice(os.environ[URL_KEY], "the environment")
    from prefect.settings import PREFECT_API_URL

    profile = PREFECT_API_URL.value()
    if profile:
        return ServerChoice(str(profile), "Prefect's profile")
    path = env_file()
    try:
        values = parse_env_file(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ServerChoice("", "")
    except OSError as exc:
        return ServerChoice("", "", f"cannot read {path}: {exc.strerror or exc}")
    url = values.get(URL_KEY, "")
    if not url:
        return ServerChoice("", "")
    os.environ[URL_KEY] = url
    if values.get(AUTH_KEY) and not os.environ.get(AUTH_KEY):
        os.environ[AUTH_KEY] = values[AUTH_KEY]
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
    return ServerChoice(url, str(path))
