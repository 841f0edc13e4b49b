"""Restore one member's snapshot from the archive, or download its chain as files."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.aws_block import read_credentials_block
from flows.interrupts import stops_streams_when_interrupted
from flows.naming import kept_name
from tasks.restore import below, download, plan, receive, standard_tool_lines
from zfs_offsite.errors import ConfigError
from zfs_offsite.jobs.restore import RestoreResult, below_note
from zfs_offsite.report.run_report import artifact_key
from zfs_offsite.settings import load_settings
from zfs_offsite.zfs.model import check_dataset_name

EXCLUSIVE = "force and resume exclude each other"
ONLY_WITH_FORCE = "it only widens force (it replaces live data); pass force too"
PRINTS_ONLY = (
    "it only prints the commands that restore into a new dataset: leave out "
    "to_dir, force and resume"
)


def restore_run_name() -> str:
    """`restore-<member>`; a retried or user-named run keeps its name."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    kept = kept_name(context.flow_run if context else None)
    if kept is not None:
        return kept
    member = ((context.parameters or {}) if context else {}).get("member", "?")
    return f"restore-{member}"


@flow(name="zfs-offsite-restore", flow_run_name=restore_run_name)
@stops_streams_when_interrupted
def restore_flow(
    member: str,
    destination: str,
    snapshot: str | None = None,
    force: bool = False,
    resume: bool = False,
    to_dir: str | None = None,
    destroy_live_dataset: bool = False,
    print_commands: bool = False,
) -> RestoreResult | list[str]:
    """Restore a member's snapshot (the full, then each incremental) into a dataset.

    Args:
        member: Member name (its directory on the backup server).
        destination: Dataset to receive into, e.g. tank/restore/alice.
        snapshot: Snapshot name; empty: newest archived.
        force: Replace an existing earlier restore (it is destroyed first).
        resume: Continue into a destination holding earlier links.
        to_dir: Download the chain into this directory instead of receiving it.
        destroy_live_dataset: With force: replace the destination even if it is a
            configured member or holds snapshots the archive does not have.
        print_commands: Receive nothing: return the standard-tool shell lines
            that restore the chain straight from the target (rclone on s3://).
    """
    if force and resume:
        raise ConfigError(f"parameters force, resume: {EXCLUSIVE}")
    if destroy_live_dataset and not force:
        raise ConfigError(f"parameter destroy_live_dataset: {ONLY_WITH_FORCE}")
    if print_commands and (to_dir or force or resume):
        raise ConfigError(f"parameter print_commands: {PRINTS_ONLY}")
    if destination:
        check_dataset_name(destination, "parameter destination:")
    logger = get_run_logger()
    settings = load_settings()
    read_credentials_block(settings)
    point = plan(settings, member, snapshot)
    logger.info(
        "%s@%s: %d file(s): %s",
        member,
        point.snapshot,
        len(point.chain),
        ", ".join(f.filename for f in point.chain),
    )
    key = artifact_key("restore", member)
    nested = tuple(below(settings, member))
    note = below_note(member, nested, destination) if nested else None
    if note:
        logger.warning("%s", note)
    if print_commands:
        if not destination:
            raise ConfigError("parameter destination: name the dataset to receive into")
        lines = standard_tool_lines(settings, member, point, destination)
        if note:
            lines.append(f"# {note}")
        create_markdown_artifact(
            key=key,
            markdown=f"# Restore {member}@{point.snapshot} from {settings.target.parsed}\n\n"
            "With standard tools:\n\n```sh\n" + "\n".join(lines) + "\n```\n",
        )
        return lines
    if to_dir:
        commands = download(settings, member, point, to_dir, destination)
        if note:
            commands.append(f"# {note}")
        create_markdown_artifact(
            key=key,
            markdown=f"# Chain of {member}@{point.snapshot} in {to_dir}\n\n"
            "Restore with standard tools:\n\n```sh\n" + "\n".join(commands) + "\n```\n",
        )
        return commands
    if not destination:
        raise ConfigError("parameter destination: name the dataset to receive into")
    result = receive(
        settings,
        member,
        point,
        destination,
        force=force,
        resume=resume,
        destroy_live=destroy_live_dataset,
    )
    result.below = nested
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
        description=f"{member}@{result.snapshot} -> {result.destination}, "
        f"GUID {result.guid}, {result.mb_per_second:.1f} MB/s",
    )
    return result
