"""`zfs-offsite restore`: a member's snapshot into a new dataset, or its chain into a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import exit_codes, flow_run, output, startup


def _dataset_name(value: str) -> str:
    """The destination, or exit 2 before any server starts (the flow checks it again)."""
    from zfs_offsite.errors import ConfigError
    from zfs_offsite.zfs.model import check_dataset_name

    try:
        return check_dataset_name(value, "destination")
    except ConfigError as exc:
        output.fail(str(exc), exit_codes.USAGE)


def restore(
    member: Annotated[
        str,
        typer.Argument(
            help="Member (its directory on the backup server).", callback=startup.member_name
        ),
    ],
    destination: Annotated[
        str,
        typer.Argument(help="Dataset to create, e.g. tank/restore/x.", callback=_dataset_name),
    ],
    config: startup.ConfigOption = None,
    snapshot: Annotated[str | None, typer.Option(help="Snapshot; default newest.")] = None,
    force: Annotated[
        bool, typer.Option(help="Replace an existing earlier restore (destroyed first).")
    ] = False,
    resume: Annotated[bool, typer.Option(help="Continue into a partly restored one.")] = False,
    destroy_live_dataset: Annotated[
        bool,
        typer.Option(
            help="With --force: replace it even if it is a configured member or holds "
            "snapshots the archive does not have (destroys live data)."
        ),
    ] = False,
    to_dir: Annotated[
        Path | None, typer.Option(help="Download the chain here instead of receiving.")
    ] = None,
    commands: Annotated[
        bool,
        typer.Option(
            "--commands",
            help="Receive nothing: print the standard-tool commands that restore the chain "
            "straight from the target (rclone cat on s3://), to run by hand.",
        ),
    ] = False,
) -> None:
    """Restore a member's snapshot (full, then each incremental) into a new dataset."""
    startup.load(config)
    flow_run.prepare_prefect()
    from flows.restore import EXCLUSIVE, restore_flow

    if force and resume:
        output.fail(f"--force, --resume: {EXCLUSIVE}", exit_codes.USAGE)
    if destroy_live_dataset and not force:
        output.fail(
            "--destroy-live-dataset: it only widens --force (it replaces live data); "
            "pass --force too",
            exit_codes.USAGE,
        )
    if commands and (to_dir or force or resume):
        output.fail(
            "--commands: it only prints the commands that restore into a new dataset; "
            "leave out --to-dir, --force and --resume",
            exit_codes.USAGE,
        )
    outcome = flow_run.run_flow(
        restore_flow,
        member=member,
        destination=destination,
        snapshot=snapshot,
        force=force,
        resume=resume,
        to_dir=str(to_dir) if to_dir else None,
        destroy_live_dataset=destroy_live_dataset,
        print_commands=commands,
    )
    if outcome.failed:
        # the whole message, every line joined
        flow_run.fail_run(
            "restore", outcome, check=f"`zfs list -t snapshot` shows what {destination} holds"
        )
    result = outcome.result
    if output.verbosity.quiet:
        return
    if isinstance(result, list):
        header = (
            f"# restore {member} into {destination} straight from the archive with standard tools:"
            if commands
            else f"# downloaded to {to_dir}; restore with standard tools:"
        )
        output.out().print(  # a comment: the whole output runs as printed (`| sh`)
            header,
            highlight=False,
            markup=False,
        )
        for line in result:
            output.out().print(f"  {line}", highlight=False, markup=False)
        return
    output.out().print(
        f"restored {member}@{result.snapshot} into {result.destination} "
        f"({len(result.files)} file(s), {result.raw_bytes / 1e6:.1f} MB, "
        f"{result.mb_per_second:.1f} MB/s, GUID {result.guid})",
        highlight=False,
        markup=False,
    )
    if result.rolled_back:
        output.out().print(
            f"{result.snapshot} is inside {result.files[-1].filename}: received it, then rolled "
            f"{result.destination} back to {result.snapshot} (destroyed "
            f"{', '.join(result.rolled_back)})",
            highlight=False,
            markup=False,
        )
    if result.below:
        from zfs_offsite.jobs.restore import below_note

        output.out().print(
            below_note(member, result.below, result.destination), highlight=False, markup=False
        )
