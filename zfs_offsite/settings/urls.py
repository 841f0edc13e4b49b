"""The URL grammar of `target.url` (sftp://, file://) and `source.ssh_url` (ssh://).

Pure text parsing. A URL that carries a password, a query or a fragment, or
names port 0, is refused rather than guessed at or shown back to the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class TargetUrl:
    """A parsed target: `sftp://user@host:port/path` or `file:///path`."""

    scheme: Literal["sftp", "file"]
    path: str
    host: str = ""
    port: int = 22
    user: str = ""

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        return f"sftp://{self.user}@{self.host}:{self.port}{self._display_path}"

    @property
    def _display_path(self) -> str:
        return self.path if self.path.startswith("/") else "/~/" + self.path


def parse_target_url(url: str) -> TargetUrl:
    """Parse and check a target URL; `sftp://h/~/dir` means `dir` below the login directory."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError("a file URL needs an absolute path: file:///srv/backups")
        no_query(url, "file:///srv/backups")
        return TargetUrl("file", unquote(parts.path))
    if parts.scheme == "sftp":
        port = url_port(url, "sftp://user@host:22/~/zfs-backups")
        if not parts.hostname or not parts.username:
            raise ValueError("an sftp URL needs user and host: sftp://user@host:22/path")
        path = unquote(parts.path)
        if path.startswith("/~/") or path == "/~":
            path = path[3:] or "."
        if not path or path == "/":
            raise ValueError("an sftp URL needs a directory: sftp://user@host/~/zfs-backups")
        return TargetUrl("sftp", path, parts.hostname, port, unquote(parts.username))
    raise ValueError("the target URL must start with sftp:// or file://")


def url_port(url: str, example: str) -> int:
    """The port of an SSH URL (22 if none), after refusing what the URL must not carry.

    A password would be shown by `zfs-offsite config`, stored in flow parameters
    and logs: it is refused, and the refusal never repeats it. A query or fragment
    would be dropped, and port 0 read as 22: both are refused, not guessed at.
    """
    parts = urlsplit(url)
    if parts.password is not None:
        raise ValueError(
            "the URL holds a password, which this tool refuses (it would be shown and "
            f"logged): remove it from the URL ({example}) and log in with key_file or an "
            "SSH agent"
        )
    no_query(url, example)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None and parts.netloc.endswith(":"):
        port = -1  # `host:` names no port: a typo, not a request for 22
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535 (or none for 22): {example}")
    return port or 22


def no_query(url: str, example: str) -> None:
    if "?" in url or "#" in url:
        raise ValueError(
            "the URL has a '?' or '#' part, which names nothing here and would be dropped: "
            f"remove it (write %3F or %23 for one in a directory name), e.g. {example}"
        )
