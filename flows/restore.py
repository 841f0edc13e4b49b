"""Restore one member's snapshot from the archive, or download its chain as files."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field, model_validator

from flows.common import stops_streams_when_interrupted
from tasks.restore import download, plan, receive
from zfs_offsite.errors import ConfigError
from zfs_offsite.report import artifact_key
from zfs_offsite.restore import RestoreResult
from zfs_offsite.settings import load_settings


class RestoreParameters(BaseModel):
    """What to restore and where; shown as a form in the Prefect UI."""

    member: str = Field(description="Member name (its directory on the backup server).")
    destination: str = Field(description="Dataset to receive into, e.g. tank/restore/alice.")
    snapshot: str | None = Field(None, description="Snapshot name; empty: newest archived.")
    force: bool = Field(False, description="Overwrite an existing destination (zfs receive -F).")
    resume: bool = Field(False, description="Continue into a destination holding earlier links.")
    to_dir: str | None = Field(
        None, description="Download the chain into this directory instead of receiving it."
    )

    @model_validator(mode="after")
    def _one_mode(self) -> RestoreParameters:
        if self.force and self.resume:
            raise ValueError("force and resume exclude each other")
        return self


def restore_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters.get("params") or {}
    member = params.get("member", "?") if isinstance(params, dict) else params.member
    return f"restore-{member}"


@flow(name="zfs-offsite-restore", flow_run_name=restore_run_name)
@stops_streams_when_interrupted
def restore_flow(params: RestoreParameters) -> RestoreResult | list[str]:
    """Restore a member's snapshot (the full, then each incremental) into a dataset."""
    logger = get_run_logger()
    settings = load_settings()
    point = plan(settings, params.member, params.snapshot)
    logger.info(
        "%s@%s: %d file(s): %s",
        params.member,
        point.snapshot,
        len(point.chain),
        ", ".join(f.filename for f in point.chain),
    )
    key = artifact_key("restore", params.member)
    if params.to_dir:
        commands = download(settings, params.member, point, params.to_dir, params.destination)
        create_markdown_artifact(
            key=key,
            markdown=f"# Chain of {params.member}@{point.snapshot} in {params.to_dir}\n\n"
            "Restore with standard tools:\n\n```sh\n" + "\n".join(commands) + "\n```\n",
        )
        return commands
    if not params.destination:
        raise ConfigError("parameter destination: name the dataset to receive into")
    result = receive(
        settings,
        params.member,
        point,
        params.destination,
        force=params.force,
        resume=params.resume,
    )
    create_table_artifact(
        key=key,
        table=[
            {
                "file": f.filename,
                "stored_bytes": f.stored_bytes,
                "raw_bytes": f.raw_bytes,
                "seconds": round(f.seconds, 2),
                "checksum": "verified" if f.verified else "none (seed era)",
            }
            for f in result.files
        ],
        description=f"{params.member}@{result.snapshot} -> {result.destination}, "
        f"GUID {result.guid}, {result.mb_per_second:.1f} MB/s",
    )
    return result
