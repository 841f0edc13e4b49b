"""Checks of single setting values that more than one model uses: ranges, umask, paths.

Each raises ValueError with a message that states what is allowed, so pydantic
turns it into one line naming the setting and where it was set.
"""

from __future__ import annotations

import math
import stat
from pathlib import Path

from pydantic import AfterValidator

from zfs_offsite.archive.recipients import Recipient, parse_recipients_text
from zfs_offsite.file_kind import path_kind


def within(low: float, high: float, unit: str, *, above: bool = False) -> AfterValidator:
    """A numeric setting's finite range, refused in one line that states it.

    Every number a setting holds goes through here: `inf`, `nan` (TOML and float
    parsing both accept them) and values past any sane use fail at load, naming
    the range, instead of hanging a night or overflowing a date later.
    """

    def check(value: float) -> float:
        problem = range_problem(value, low, high, unit, above=above)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def range_problem(
    value: float, low: float, high: float, unit: str, *, above: bool = False
) -> str | None:
    """`must be <unit> from <low> to <high>` if `value` is outside (or inf, nan); else None."""
    fits = math.isfinite(value) and (value > low if above else value >= low)
    if fits and value <= high:
        return None
    span = f"more than {low:g} and at most" if above else f"from {low:g} to"
    return f"must be {unit} {span} {high:g}"


UMASK_HINT = "an octal umask such as 0o077 (private, the default) or 0o027 (group may read)"


def parse_umask(value: object) -> int:
    """A umask from TOML (`0o027`, an int) or the environment (`"027"`, `"0o027"`: octal).

    The owner's bits must stay: the tool has to read back what it wrote."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {UMASK_HINT}")
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not text or any(c not in "01234567" for c in text):
            raise ValueError(f"{value!r} is not {UMASK_HINT}")
        value = int(text, 8)
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError(f"{value!r} is not {UMASK_HINT}")
    if value & 0o700:
        raise ValueError(
            f"{oct(value)} takes the owner's own access: zfs-offsite could not read its archive; "
            f"use {UMASK_HINT}"
        )
    return value


def must_be_a_directory(path: Path) -> None:
    """A file:// archive that exists must be a directory: `/dev/null` crashed every command."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing: a first backup creates it, or the archive identity says it is gone
    if not stat.S_ISDIR(mode):
        raise ValueError(
            f"{path} is {path_kind(mode)}, not a directory: point it at the archive's directory"
        )


def read_recipients_file(path: Path) -> list[Recipient]:
    """The public keys of an `age -R` file; ValueError naming the file if it has none usable."""
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):  # a pipe would block the read, /dev/null reads as empty
            raise ValueError(
                f"{path} is {path_kind(mode)}, not a file: name the file of public keys"
            )
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist: name the file of public keys") from None
    except OSError as exc:
        raise ValueError(
            f"{path} cannot be read ({exc.strerror}): name a readable text file"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not text (not UTF-8): name the file of public keys") from None
    try:
        return parse_recipients_text(text)
    except ValueError as exc:
        raise ValueError(f"{path} {exc}") from None
