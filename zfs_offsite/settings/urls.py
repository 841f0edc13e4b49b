"""The URL grammar of `target.url` (sftp://, file://, s3://) and `source.ssh_url` (ssh://).

Pure text parsing. A URL that carries a password (or, for s3://, any credential),
a query or a fragment, or names port 0, is refused rather than guessed at or
shown back to the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class TargetUrl:
    """A parsed target: `sftp://user@host:port/path`, `file:///path` or `s3://bucket/prefix`.

    For s3:// `host` is the bucket and `path` the key prefix, without slashes at
    either end ("" for the bucket's top).
    """

    scheme: Literal["sftp", "file", "s3"]
    path: str
    host: str = ""
    port: int = 22
    user: str = ""

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        if self.scheme == "s3":
            return f"s3://{self.host}/{self.path}"
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
    if parts.scheme == "s3":
        return parse_s3_url(url)
    raise ValueError("the target URL must start with sftp://, file:// or s3://")


S3_EXAMPLE = "s3://zfs-backups/lab"
# S3's rules for a bucket name (the strict ones every store accepts): 3 to 63 of
# lowercase letters, digits, '.' and '-', a letter or digit at both ends.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


def parse_s3_url(url: str) -> TargetUrl:
    """`s3://BUCKET/PREFIX`: the archive's keys are PREFIX/<member>/<file>.

    Credentials come only from the AWS chain (environment, shared credentials
    file and profile): a URL that holds any is refused, and the refusal never
    repeats them. The endpoint and region are `target.s3` settings, so a port
    here is refused too.
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ValueError(
            "the s3 URL holds credentials, which this tool refuses (they would be shown and "
            f"logged): remove them from the URL ({S3_EXAMPLE}) and give them through the AWS "
            "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a shared credentials "
            "file with target.s3.profile"
        )
    no_query(url, S3_EXAMPLE)
    bucket = parts.netloc
    if ":" in bucket:
        raise ValueError(
            f"the s3 URL names a port ({bucket}): put the store's address in "
            f"target.s3.endpoint_url and only the bucket in the URL, e.g. {S3_EXAMPLE}"
        )
    if not bucket:
        raise ValueError(f"an s3 URL needs a bucket, e.g. {S3_EXAMPLE}")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _ADDRESS.fullmatch(bucket):
        raise ValueError(
            f"{bucket!r} is not a valid S3 bucket name: use 3 to 63 lowercase letters, "
            "digits, '.' and '-', starting and ending with a letter or digit (not an IP "
            f"address), e.g. {S3_EXAMPLE}"
        )
    prefix = unquote(parts.path).strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(
            f"the s3 URL's prefix {prefix!r} has an empty, '.' or '..' part, which S3 keeps "
            f"as part of the key: write it plainly, e.g. {S3_EXAMPLE}/site-a"
        )
    return TargetUrl("s3", prefix, bucket, 0)


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
