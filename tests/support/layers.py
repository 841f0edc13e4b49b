"""The project's import graph and the rules its layers keep, read from source with `ast`.

Pure: it parses files and never imports the modules it checks, so a broken or slow
module cannot hide a violation. The graph has one node per module of PACKAGES; an
edge is an import that runs, at the top of a module or inside a function (a lazy
import runs when it is called, so it counts for layers and cycles alike). The same
graph seen one folder up (`folder_graph`) must have no cycles either.

Left out, on purpose:
- imports under `if TYPE_CHECKING:` never run: they can create neither a runtime
  cycle nor I/O in the plan, so the rules here ignore them (the type checker still
  reads them, and a type-only import may point anywhere);
- the implicit import of a module's parent packages (`zfs_offsite/__init__.py` runs
  before `zfs_offsite.plan.backup`): those files import nothing that matters here.

`from zfs_offsite.stream import readback` is an edge to `zfs_offsite.stream.readback`
(the submodule), not to the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

PACKAGES = ("zfs_offsite", "flows", "tasks", "cli", "deployments")

# The layers, bottom first. A module may import its own layer and those below it,
# never one above. An entry names one module, or with ".*" a package and everything
# in it; the most specific entry places a module. Each folder of the core is a layer
# of its own; only stdlib-like leaves and plain models sit lower than their folder
# (settings validates with them, the plan reads them). zfs/ and remote/ use neither
# the other (each stands on transport/); zfs/ and archive/ meet only at the leaves
# (zfs.members names directories with archive.names). What a folder imports of
# another, leaves included, must not close a loop between folders: `folder_cycles`.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # errors, and the process-wide stop switch that every layer may look at.
    (
        "errors",
        ("zfs_offsite", "zfs_offsite.errors", "zfs_offsite.cancel", "zfs_offsite.file_kind"),
    ),
    (
        # stdlib only, pure; archive.recipients parses public keys with pyrage (no I/O).
        # values/ is the folder of leaves: plain values and setting grammars.
        "leaves",
        (
            "zfs_offsite.archive.names",
            "zfs_offsite.archive.recipients",
            "zfs_offsite.zfs.model",
            "zfs_offsite.values.*",
        ),
    ),
    ("models", ("zfs_offsite.archive.model", "zfs_offsite.zfs.members")),
    ("settings", ("zfs_offsite.settings.*",)),
    ("plan", ("zfs_offsite.plan.*",)),
    ("transport", ("zfs_offsite.transport.*",)),
    ("remote", ("zfs_offsite.remote.*",)),
    ("zfs", ("zfs_offsite.zfs.*",)),
    ("archive", ("zfs_offsite.archive.*",)),
    # secret keys (identities, keygen): just below the stream that decrypts with them,
    # so nothing of the archive, ZFS or the transports can reach a secret key
    ("keys", ("zfs_offsite.keys.*",)),
    ("stream", ("zfs_offsite.stream.*",)),
    ("connect", ("zfs_offsite.connect",)),  # the one place settings become connections
    ("jobs", ("zfs_offsite.jobs.*",)),
    # the run report's rows and the history read from them: the jobs' results, shown
    ("report", ("zfs_offsite.report.*",)),
    ("tasks", ("tasks.*",)),
    ("flows", ("flows.*",)),
    ("deployments", ("deployments.*",)),  # `zfs-offsite serve` (cli/app.py) serves them
    ("cli", ("cli.*",)),
)

# Modules that compute and decide but touch nothing outside the process: the plan
# and what it reads. Each may import only PURE_STDLIB and other pure modules.
PURE = (
    "zfs_offsite.errors",
    "zfs_offsite.archive.names",
    "zfs_offsite.archive.model",
    "zfs_offsite.zfs.model",
    "zfs_offsite.zfs.members",
    "zfs_offsite.values.*",
    "zfs_offsite.plan.*",
)

# The stdlib a pure module may use: values, text and arithmetic. Not on it: os,
# pathlib, io, shutil, tempfile, subprocess, socket, select, threading, time,
# zoneinfo (reads the tz database), random and secrets (not repeatable).
# json turns text into values (no files); logging is allowed for a warning about an
# input it skips (archive.model): it reads nothing and changes no result.
PURE_STDLIB = frozenset(
    {
        "__future__",
        "abc",
        "bisect",
        "collections",
        "contextlib",
        "dataclasses",
        "datetime",
        "enum",
        "functools",
        "heapq",
        "itertools",
        "json",
        "logging",
        "math",
        "operator",
        "re",
        "string",
        "textwrap",
        "types",
        "typing",
    }
)

# settings is a leaf: the policy grammar and the names it parses live in pure leaves.
SETTINGS = ("zfs_offsite.settings.*",)
SETTINGS_MAY_IMPORT = (
    "zfs_offsite.errors",
    "zfs_offsite.file_kind",
    "zfs_offsite.settings.*",
    "zfs_offsite.archive.names",
    "zfs_offsite.archive.recipients",
    "zfs_offsite.zfs.model",
    "zfs_offsite.values.*",
)


@dataclass(frozen=True)
class Import:
    """One import that runs: `importer` (a module of the tree) imports `target`."""

    importer: str
    target: str  # a module of the tree, or the dotted name of an outside one ("os.path")
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.target}"


def modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that can run: all but those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _runtime_imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _runtime_imports(node)


def _absolute(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(root: Path, packages: Iterable[str] = PACKAGES) -> list[Import]:
    """Every runtime import of the tree, a submodule named in `from pkg import sub` resolved."""
    tree_modules = modules(root, packages)
    found: list[Import] = []
    for importer, path in tree_modules.items():
        is_package = path.name == "__init__.py"
        shown = path.relative_to(root)
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _absolute(importer, is_package, node)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in tree_modules else base
                    for alias in node.names
                ]
            found.extend(Import(importer, t, shown, node.lineno) for t in dict.fromkeys(targets))
    return found


def graph(found: Iterable[Import], tree_modules: Iterable[str]) -> dict[str, set[str]]:
    """The edges between modules of the tree (outside modules left out)."""
    nodes = set(tree_modules)
    edges: dict[str, set[str]] = {name: set() for name in nodes}
    for imp in found:
        if imp.target in nodes and imp.target != imp.importer:
            edges[imp.importer].add(imp.target)
    return edges


def folder_of(module: str) -> str:
    """The folder a module lives in: `zfs_offsite.<pkg>` in the core (a top-level module
    such as `zfs_offsite.cancel` is its own), the top package (`flows`) elsewhere."""
    parts = module.split(".")
    return ".".join(parts[:2] if parts[0] == "zfs_offsite" else parts[:1])


def folder_graph(edges: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """The module graph seen one folder up: an edge where any module of one folder
    imports any module of another. Leaves count: they live in their folder."""
    folders: dict[str, set[str]] = {}
    for importer, targets in edges.items():
        here = folder_of(importer)
        folders.setdefault(here, set())
        for target in targets:
            there = folder_of(target)
            folders.setdefault(there, set())
            if there != here:
                folders[here].add(there)
    return folders


def folder_cycles(found: Iterable[Import], tree_modules: Iterable[str]) -> list[str]:
    """Each loop between folders, with the imports that close it, one line each.

    Two folders that import each other through different modules form no module
    cycle, yet neither can be read, tested or moved without the other."""
    found = list(found)
    nodes = set(tree_modules)
    lines = []
    for path in cycles(folder_graph(graph(found, nodes))):
        lines.append(" -> ".join(path))
        for here, there in pairwise(path):
            lines.extend(
                f"  {imp}"
                for imp in found
                if imp.target in nodes
                and folder_of(imp.importer) == here
                and folder_of(imp.target) == there
            )
    return lines


def matches(module: str, entry: str) -> bool:
    """Whether `entry` (a module, or "pkg.*" for a package and all in it) names `module`."""
    if entry.endswith(".*"):
        package = entry[:-2]
        return module == package or module.startswith(package + ".")
    return module == entry


def _specificity(entry: str) -> tuple[int, int]:
    return (0 if entry.endswith(".*") else 1, entry.count("."))


def layer_of(module: str, layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS) -> int | None:
    """The index of `module`'s layer (0 is the bottom), or None if no entry places it."""
    best: tuple[tuple[int, int], int] | None = None
    for index, (_name, entries) in enumerate(layers):
        for entry in entries:
            if matches(module, entry) and (best is None or _specificity(entry) > best[0]):
                best = (_specificity(entry), index)
    return best[1] if best else None


def is_pure(module: str, pure: Iterable[str] = PURE) -> bool:
    return any(matches(module, entry) for entry in pure)


def unplaced(tree_modules: Iterable[str]) -> list[str]:
    """Modules no layer names: a new module must be given its place in LAYERS."""
    return sorted(m for m in tree_modules if layer_of(m) is None)


def upward_imports(found: Iterable[Import], tree_modules: Iterable[str]) -> list[Import]:
    """Imports of a module from a higher layer than the importer's."""
    nodes = set(tree_modules)
    bad = []
    for imp in found:
        if imp.target not in nodes:
            continue
        here, there = layer_of(imp.importer), layer_of(imp.target)
        if here is not None and there is not None and there > here:
            bad.append(imp)
    return bad


def impure_imports(found: Iterable[Import]) -> list[Import]:
    """Imports by a pure module of anything but PURE_STDLIB and other pure modules."""
    return [
        imp
        for imp in found
        if is_pure(imp.importer)
        and not is_pure(imp.target)
        and imp.target.split(".")[0] not in PURE_STDLIB
    ]


def settings_imports_beyond_leaves(found: Iterable[Import]) -> list[Import]:
    """Imports of the core by settings other than errors and the pure leaves."""
    return [
        imp
        for imp in found
        if any(matches(imp.importer, entry) for entry in SETTINGS)
        and imp.target.split(".")[0] == "zfs_offsite"
        and not any(matches(imp.target, entry) for entry in SETTINGS_MAY_IMPORT)
    ]


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle path per strongly connected group of modules (Tarjan), e.g. [a, b, a]."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative Tarjan: a deep import chain must not hit the recursion limit.
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(_cycle_path(group, edges) for group in groups)


def _cycle_path(group: list[str], edges: Mapping[str, set[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges[node] & members):
                if child == start:
                    back = [node]
                    while back[-1] != start:
                        back.append(came_from[back[-1]])
                    return [*back[::-1], start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")  # Tarjan said there is one
