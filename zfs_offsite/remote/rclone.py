"""How rclone, a standard tool, names an object of an S3 target: for commands a person runs.

Restore prints shell lines that read the archive without this tool. rclone's
on-the-fly remote (`:s3,option=value,…:bucket/key`) needs no rclone config file,
and `env_auth=true` takes the keys from the same AWS sources this tool uses (the
environment, ~/.aws/credentials and its profile): the lines carry the endpoint,
region and addressing, never a credential. rclone's connection-string values
holding `:` or `,` (an endpoint URL) must be double-quoted, a `"` doubled.
"""

from __future__ import annotations

import shlex
from typing import Literal

Addressing = Literal["auto", "path", "virtual"]


def rclone_remote(
    bucket: str,
    key: str,
    *,
    endpoint_url: str | None,
    region: str | None,
    addressing_style: Addressing = "auto",
    profile: str | None = None,
) -> str:
    """`:s3,provider=…,env_auth=true,…:BUCKET/KEY`, unquoted for the shell.

    Without an endpoint the store is AWS (rclone then picks virtual addressing
    itself); with one it is "Other", which every S3-compatible store accepts.
    """
    options = ["s3", f"provider={'Other' if endpoint_url else 'AWS'}", "env_auth=true"]
    if endpoint_url:
        options.append(f"endpoint={_value(endpoint_url)}")
    if region:
        options.append(f"region={_value(region)}")
    if addressing_style != "auto":
        options.append(f"force_path_style={'true' if addressing_style == 'path' else 'false'}")
    if profile:
        options.append(f"profile={_value(profile)}")
    return f":{','.join(options)}:{bucket}/{key}"


def rclone_cat(remote: str) -> str:
    """The shell words that write the object to stdout.

    `--config ''`: the remote is all on the line, so no config file is read (nor
    missed in a notice on every line's stderr).
    """
    return f"rclone cat --config '' {shlex.quote(remote)}"


def _value(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
