"""Where the CLI's output goes: answers on stdout, everything else on stderr.

stdout carries only what a command answers (tables, JSON), so `--json | jq`
and pipes into files never see info lines, progress bars or errors. Tables
are not cut to 80 columns when stdout is not a terminal, unless COLUMNS gives a
width (tables only).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

WIDE = 10_000  # "no limit" for rich when stdout is a pipe or a file


@dataclass
class Verbosity:
    """-q: errors only; default: answers and a few info lines; -v: Prefect's logs too."""

    level: int = 0

    @property
    def quiet(self) -> bool:
        return self.level < 0

    @property
    def verbose(self) -> bool:
        return self.level > 0


verbosity = Verbosity()


def _console(stream: object) -> Console:
    tty = bool(getattr(stream, "isatty", lambda: False)())
    # rich takes width=None (measure the terminal) though its annotation says int.
    return Console(file=stream, width=None if tty else WIDE, soft_wrap=not tty)  # type: ignore[arg-type]


def _columns() -> int:
    """$COLUMNS if it is a positive number, else 0."""
    raw = os.environ.get("COLUMNS", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 0


def out() -> Console:
    """stdout, built per call so test runners that swap sys.stdout see the output."""
    return _console(sys.stdout)


def err() -> Console:
    return _console(sys.stderr)


def info(message: str) -> None:
    """An info line on stderr (hidden by -q)."""
    if not verbosity.quiet:
        err().print(message, highlight=False, markup=False)


def one_line(message: str) -> str:
    """A message on one line: its lines joined, none dropped (zfs puts the cause last)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return "; ".join(lines)


def error(message: str) -> None:
    """The one error line, on stderr, shown even with -q."""
    err().print(f"[red]error:[/red] {one_line(message)}", highlight=False)


def fail(message: str, code: int) -> NoReturn:
    """Print the one error line and exit with `code` (cli/exit_codes.py)."""
    error(message)
    raise typer.Exit(code)


def print_rows(title: str, columns: Sequence[str], rows: Iterable[dict[str, object]]) -> None:
    """A rich table of report rows (the same rows the flows' artifacts hold) on stdout."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(*(str(r.get(c, "")) for c in columns))
    console = out()
    if not console.is_terminal and _columns():  # `COLUMNS=100 zfs-offsite … | less`
        console = Console(file=sys.stdout, width=_columns())
    console.print(table)


def print_lines(lines: Iterable[str]) -> None:
    """Plain lines on stdout, never wrapped or cut (file names stay whole to copy)."""
    console = out()
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def print_json(document: object) -> None:
    """One JSON document on stdout and nothing else there."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()
