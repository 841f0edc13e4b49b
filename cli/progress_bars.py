"""Rich progress bars for running streams, on stderr (stdout stays for the answer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from cli import output
from zfs_offsite.stream.progress import StreamProgress, listening


def link_text(report: StreamProgress) -> str:
    """What the link is doing: `checking the earlier upload: 128 MiB matched` while a resume
    checks what an earlier attempt stored, then the rate sent against the bandwidth limit,
    e.g. `1.98 MB/s sent, limit 2 MB/s`."""
    if report.checking:
        return f"checking the earlier upload: {report.stored_bytes >> 20} MiB matched"
    if not report.limit:
        return ""
    rate = f"{report.rate / 1e6:.2f} MB/s sent, " if report.rate is not None else ""
    return f"{rate}limit {report.limit}"


@contextmanager
def stream_progress_bars() -> Iterator[None]:
    """One bar per running stream (a total where `send -nP` gives one), with the
    stored rate against the bandwidth limit when one is set.

    Only on a terminal and without -q: a log file or cron mail gets the report table instead.
    """
    console = output.err()
    if output.verbosity.quiet or not console.is_terminal:
        yield
        return
    bars: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[link]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:

        def show(report: StreamProgress) -> None:
            if report.member not in bars:
                bars[report.member] = progress.add_task(
                    f"{report.member}: {report.filename}", total=report.estimate, link=""
                )
            progress.update(
                bars[report.member],
                completed=report.raw_bytes,
                total=report.raw_bytes if report.done else report.estimate,
                link=link_text(report),
            )

        with listening(show):
            yield
