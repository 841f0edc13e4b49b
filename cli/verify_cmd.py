"""`zfs-offsite verify`: prove stored files can be read back and their chains hold.

New files and a rotating share of the older ones are read each run
(`verify.cycle_runs`); `--all` reads every file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli import flow_run, output, startup

if TYPE_CHECKING:
    from zfs_offsite.jobs.verify import MemberVerification

VERIFY_COLUMNS = ("member", "file", "verdict", "read", "last_read", "stored_bytes", "detail")


def verify(
    config: startup.ConfigOption = None,
    member: startup.MembersOption = None,
    mark: Annotated[bool, typer.Option(help="Mark corrupt files (never deletes).")] = True,
    all_files: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Read every stored file in full, not just new ones and this run's share "
            "(verify.cycle_runs).",
        ),
    ] = False,
    json_output: startup.JsonOption = False,
) -> None:
    """Read stored files back: checksums, decompression, END record, chain continuity.

    New files are read at once, the rest in a rotating share (verify.cycle_runs).
    """
    settings = startup.load(config)
    flow_run.prepare_prefect()
    from flows.verify import verify_flow
    from zfs_offsite.errors import MembersFailed
    from zfs_offsite.report.run_report import verification_rows

    outcome = flow_run.run_flow(verify_flow, members=member or [], mark=mark, all_files=all_files)
    result = outcome.result
    failed = isinstance(result, MembersFailed)
    verifications = result.outcomes if failed else result if isinstance(result, list) else []
    # Run-wide facts (an unreadable verify record) the rows alone would hide.
    notes = list(dict.fromkeys(v.note for v in verifications if v.note))
    if json_output:
        output.print_json(
            {
                "target": str(settings.target.parsed),
                "status": "failed" if outcome.failed else "ok",
                "error": outcome.message if outcome.failed else None,
                "warnings": notes,
                "members": [
                    {
                        "member": v.member,
                        "verdict": v.verdict.value,
                        "detail": v.detail,
                        "files": [
                            {
                                k: r[k]
                                for k in (
                                    "file",
                                    "verdict",
                                    "read",
                                    "last_read",
                                    "stored_bytes",
                                    "raw_bytes",
                                )
                            }
                            | {"detail": r["detail"]}
                            for r in verification_rows(v)
                        ],
                    }
                    for v in verifications
                ],
            }
        )
    elif verifications and not output.verbosity.quiet:
        rows = [
            r
            for v in verifications
            for r in [
                *verification_rows(v),
                {
                    "member": v.member,
                    "file": "(member)",
                    "verdict": v.verdict.value,
                    "detail": v.detail,
                },
            ]
        ]
        output.print_rows("zfs-offsite verify", VERIFY_COLUMNS, rows)
    if not json_output:
        for note in notes:
            output.info(f"warning: {note}")
        for line in findings(verifications, marked=mark):
            output.error(line)
    if outcome.failed:
        flow_run.fail_run("verify", outcome, check="run verify again")


NEXT_AFTER_CORRUPT = (
    " (marked .corrupt: no backup builds on it; the next one builds on the newest sound file,"
    " or sends a full)"
)


def findings(verifications: list[MemberVerification], *, marked: bool) -> list[str]:
    """One line per unsound file (or member that could not be read): which, and why.

    On stderr beside the table, so a cron mail or a `2>` log names the file and
    the reason without -v.
    """
    from zfs_offsite.jobs.verify import FAILING, Verdict

    lines = []
    for v in verifications:
        if v.error:
            lines.append(f"{v.member}: {v.verdict.value}: {v.error}")
            continue
        bad = [f for f in v.files if f.verdict in FAILING]
        lines += [
            f"{v.member}/{f.filename}: {f.verdict.value}: {f.detail}"
            + (NEXT_AFTER_CORRUPT if marked and f.verdict is Verdict.CORRUPT else "")
            for f in bad
        ]
        if not bad and v.verdict in FAILING:
            lines.append(f"{v.member}: {v.verdict.value}: {v.detail}")
    return lines
