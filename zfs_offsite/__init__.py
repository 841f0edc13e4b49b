"""zfs-offsite: ship ZFS snapshots off-site as compressed files.

The domain core: importable and testable without Prefect.

`__version__` is pyproject.toml's `[project] version`, the one place it is written:
read from the installed package's metadata (`uv sync` installs the project), or
from pyproject.toml beside this package in a checkout that was never installed.
It is read on first use, not at import: every core module imports this package,
and looking up installed metadata costs tens of milliseconds.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    version = _read_version()
    globals()["__version__"] = version  # later reads find it without asking again
    return version


def _read_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("zfs-offsite")
    except metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        with pyproject.open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
