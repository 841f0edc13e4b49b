"""pyproject declares exactly the third-party packages the shipped code imports.

A package that only arrives through another (typer and rich through Prefect) can
vanish with that package's next release; a declared package nothing imports is a
dependency in name only. Both directions are checked from source, with the
installed distributions mapping import names to package names (`dotenv` is
`python-dotenv`).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("zfs_offsite", "flows", "tasks", "cli", "deployments", "bench")
OURS = {*SHIPPED, "tests"}  # bench reuses the test services
# The S3 clients bench/s3_client.py measures boto3 against, from a scratch venv of the
# benchmarker's: rivals, never imported by the tool, so never its dependencies.
BENCH_RIVALS = {"aiobotocore", "minio"}


def imported_top_levels() -> dict[str, str]:
    """Each third-party top-level module the shipped code imports, with one file importing it."""
    found: dict[str, str] = {}
    for folder in SHIPPED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in OURS and top not in sys.stdlib_module_names:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        normalized(re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]) for dep in project["dependencies"]
    }


def test_every_imported_package_is_declared() -> None:
    distributions = packages_distributions()
    missing = sorted(
        f"{module} ({', '.join(distributions.get(module, ['not installed']))}) in {path}"
        for module, path in imported_top_levels().items()
        if not {normalized(d) for d in distributions.get(module, [])} & declared()
        and not (module in BENCH_RIVALS and path.startswith("bench/"))
    )
    assert missing == []


def test_every_declared_package_is_imported() -> None:
    distributions = packages_distributions()
    used = {
        normalized(d) for module in imported_top_levels() for d in distributions.get(module, [])
    }
    assert sorted(declared() - used) == []
