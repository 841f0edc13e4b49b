"""The domain core stays free of Prefect and of the layers above it."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from tests.support import layers

CORE = Path(__file__).resolve().parents[2] / "zfs_offsite"
UPPER = ("prefect", "flows", "tasks", "deployments", "cli")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_never_imports_upward() -> None:
    offenders = {
        f"{path.relative_to(CORE.parent)}: {name}"
        for path in CORE.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in UPPER
    }
    assert not offenders


# The inner layers, by the import graph of tests/support/layers.py.

ROOT = CORE.parent
TREE = layers.modules(ROOT)
IMPORTS = layers.imports(ROOT)


def shown(found: list[layers.Import]) -> list[str]:
    return [str(imp) for imp in found]


def test_every_module_has_a_layer() -> None:
    assert layers.unplaced(TREE) == []


def test_every_entry_of_the_tables_names_a_module() -> None:
    """A renamed module must not drop out of a rule silently."""
    entries = [e for _name, group in layers.LAYERS for e in group]
    entries += [*layers.PURE, *layers.SETTINGS, *layers.SETTINGS_MAY_IMPORT]
    stale = [e for e in entries if not any(layers.matches(m, e) for m in TREE)]
    assert stale == []


def test_layers_import_only_downward() -> None:
    """settings is left to the stricter leaf rule below (it may import only leaves)."""
    found = [i for i in IMPORTS if not any(layers.matches(i.importer, e) for e in layers.SETTINGS)]
    assert shown(layers.upward_imports(found, TREE)) == []


def test_the_plan_and_what_it_reads_do_no_io() -> None:
    assert shown(layers.impure_imports(IMPORTS)) == []


def test_settings_is_a_leaf() -> None:
    assert shown(layers.settings_imports_beyond_leaves(IMPORTS)) == []


def test_no_import_cycles() -> None:
    assert layers.cycles(layers.graph(IMPORTS, TREE)) == []


def test_no_cycles_between_folders() -> None:
    assert layers.folder_cycles(IMPORTS, TREE) == []


# The checker itself, on small trees that break one rule each.


def write_tree(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return layers.modules(root)


def test_an_upward_import_is_reported_with_its_line(tmp_path: Path) -> None:
    tree = write_tree(
        tmp_path,
        {
            "zfs_offsite/plan/backup.py": "import re\nfrom zfs_offsite.jobs.backup import run\n",
            "zfs_offsite/jobs/backup.py": "from zfs_offsite.plan.backup import plan\n",
        },
    )
    found = layers.imports(tmp_path)
    assert shown(layers.upward_imports(found, tree)) == [
        "zfs_offsite/plan/backup.py:2: zfs_offsite.plan.backup imports zfs_offsite.jobs.backup"
    ]


def test_a_cycle_is_reported_with_its_path(tmp_path: Path) -> None:
    tree = write_tree(
        tmp_path,
        {
            "zfs_offsite/jobs/__init__.py": "",
            "zfs_offsite/jobs/a.py": "from . import b\n",
            # a lazy import runs when called: it closes the cycle too
            "zfs_offsite/jobs/b.py": "def f():\n    from zfs_offsite.jobs.a import g\n",
            "zfs_offsite/jobs/c.py": "from zfs_offsite.jobs import a\n",
        },
    )
    edges = layers.graph(layers.imports(tmp_path), tree)
    assert layers.cycles(edges) == [
        ["zfs_offsite.jobs.a", "zfs_offsite.jobs.b", "zfs_offsite.jobs.a"]
    ]


def test_two_folders_importing_each_other_are_reported(tmp_path: Path) -> None:
    """No module cycle (a -> x, y -> b), yet remote/ and archive/ need each other."""
    tree = write_tree(
        tmp_path,
        {
            "zfs_offsite/remote/store.py": "from zfs_offsite.archive.names import partial_name\n",
            "zfs_offsite/archive/names.py": "import re\n",
            "zfs_offsite/archive/index.py": "from zfs_offsite.remote import store\n",
            "zfs_offsite/zfs/runner.py": "from zfs_offsite.remote.store import Store\n",
        },
    )
    found = layers.imports(tmp_path)
    assert layers.cycles(layers.graph(found, tree)) == []
    assert layers.folder_cycles(found, tree) == [
        "zfs_offsite.archive -> zfs_offsite.remote -> zfs_offsite.archive",
        "  zfs_offsite/archive/index.py:1: zfs_offsite.archive.index imports "
        "zfs_offsite.remote.store",
        "  zfs_offsite/remote/store.py:1: zfs_offsite.remote.store imports "
        "zfs_offsite.archive.names",
    ]


def test_folders_of_the_core_and_of_the_shells() -> None:
    assert layers.folder_of("zfs_offsite.zfs.runner") == "zfs_offsite.zfs"
    assert layers.folder_of("zfs_offsite.cancel") == "zfs_offsite.cancel"
    assert layers.folder_of("zfs_offsite") == "zfs_offsite"
    assert layers.folder_of("flows.backup") == "flows"


def test_an_import_upward_between_folders_is_reported(tmp_path: Path) -> None:
    """zfs/ sits below archive/: a command builder must not read the archive's index."""
    tree = write_tree(
        tmp_path,
        {
            "zfs_offsite/zfs/commands.py": "from zfs_offsite.archive.index import read\n",
            "zfs_offsite/archive/index.py": "def read(): ...\n",
        },
    )
    assert shown(layers.upward_imports(layers.imports(tmp_path), tree)) == [
        "zfs_offsite/zfs/commands.py:1: zfs_offsite.zfs.commands imports zfs_offsite.archive.index"
    ]


def test_a_plan_module_running_a_command_is_reported(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "zfs_offsite/plan/chains.py": """\
                from dataclasses import dataclass
                import subprocess
                from os.path import join
                from zfs_offsite.zfs.model import Snapshot
                from zfs_offsite.zfs.runner import Runner
            """,
        },
    )
    assert shown(layers.impure_imports(layers.imports(tmp_path))) == [
        "zfs_offsite/plan/chains.py:2: zfs_offsite.plan.chains imports subprocess",
        "zfs_offsite/plan/chains.py:3: zfs_offsite.plan.chains imports os.path",
        "zfs_offsite/plan/chains.py:5: zfs_offsite.plan.chains imports zfs_offsite.zfs.runner",
    ]


def test_type_checking_imports_are_left_out(tmp_path: Path) -> None:
    tree = write_tree(
        tmp_path,
        {
            "zfs_offsite/plan/cadence.py": """\
                import typing
                if typing.TYPE_CHECKING:
                    import subprocess
                    from zfs_offsite.jobs.backup import Job
                else:
                    import os
            """,
            "zfs_offsite/jobs/backup.py": "from zfs_offsite.plan.cadence import due\n",
        },
    )
    found = layers.imports(tmp_path)
    assert shown(layers.impure_imports(found)) == [
        "zfs_offsite/plan/cadence.py:6: zfs_offsite.plan.cadence imports os"
    ]
    assert layers.cycles(layers.graph(found, tree)) == []


def test_settings_importing_a_transport_is_reported(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "zfs_offsite/settings/__init__.py": "",
            "zfs_offsite/settings/model.py": """\
                from zfs_offsite.settings import sources
                from zfs_offsite.values.policy import Rule
                from zfs_offsite.transport.ssh import SshEndpoint
            """,
            "zfs_offsite/settings/sources.py": "",
        },
    )
    assert shown(layers.settings_imports_beyond_leaves(layers.imports(tmp_path))) == [
        "zfs_offsite/settings/model.py:3: zfs_offsite.settings.model imports "
        "zfs_offsite.transport.ssh"
    ]
