"""Every bench command the docs show runs, at a tiny size, so a changed signature fails here.

The commands are read from README.md, docs/ and the bench modules' own docstrings, then shrunk
(sizes, rounds, members) and run as printed otherwise: a flag the bench no longer takes, or a
crash in a path the docs promise, is a failed test rather than a user's traceback.
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.openzfs_vm import VM_CACHE, VM_PORT

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMMAND = re.compile(r"python -m (bench\.\w+)((?:[ \t]+--?[\w-]+(?:[ \t]+[^\s`#|;&]+)*)*)")
TINY = {"--size-mb": ["2"], "--rounds": ["1"], "--members": ["3"], "--rss-sizes": ["4"]}
# A resume needs whole 64 MiB checkpoints before the cut at 80 %: the smallest size that
# shows one (about a minute).
TINY_BY_MODULE = {"bench.s3_resume": {"--size-mb": ["160"]}}
# A command may leave these at the bench's default (`bench.throughput --rounds 3 --baseline`
# ran its default 1 GiB; a usage line, `python -m bench.s3_upload`, every default): the tiny
# form sets each one the bench takes.
ALWAYS_TINY = ("--size-mb", "--rounds", "--members")
# Pauses that only steady a full-size measurement: zero in the tiny form, docs or not
# (flow_overhead's 10 s before each of its timed runs).
NO_PAUSE_BY_MODULE = {"bench.flow_overhead": {"--settle": ["0"]}}


def documented_commands() -> list[tuple[str, list[str]]]:
    """(module, arguments) of each `python -m bench.X ...` in the docs, one per tiny form."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    texts += sorted((ROOT / "bench").glob("*.py"))
    found: dict[str, tuple[str, list[str]]] = {}
    for path in texts:
        for match in COMMAND.finditer(path.read_text()):
            module, arguments = match.group(1), shlex.split(match.group(2))
            tiny = shrunk(arguments, None, module)
            found.setdefault(" ".join([module, *tiny]), (module, arguments))
    return sorted(found.values())


def shrunk(arguments: list[str], work: Path | None, module: str = "") -> list[str]:
    """The same flags at a size that runs in seconds; placeholders made real under `work`."""
    out: list[str] = []
    tiny = TINY | TINY_BY_MODULE.get(module, {}) | NO_PAUSE_BY_MODULE.get(module, {})
    i = 0
    while i < len(arguments):
        flag = arguments[i]
        values: list[str] = []
        i += 1
        while i < len(arguments) and not arguments[i].startswith("--"):
            values.append(arguments[i])
            i += 1
        if flag in tiny:
            values = tiny[flag]
        elif flag == "--baseline" and work is not None:
            values = [str(exported_tree(work / "baseline"))]
        elif flag == "--extra" and work is not None:  # a variant checkout, as many as given
            values = [str(exported_tree(work / f"extra-{len(out)}"))]
        elif flag == "--ratio-model" and work is not None:
            values = [str(tiny_tar(work / "data.tar"))]
        out += [flag, *values]
    for flag in [*ALWAYS_TINY, *NO_PAUSE_BY_MODULE.get(module, {})]:
        if flag not in out and takes(module, flag):
            out += [flag, *tiny[flag]]
    return out


def takes(module: str, flag: str) -> bool:
    """Whether bench `module` has the option `flag` (its argparse call names it)."""
    source = ROOT / f"{module.replace('.', '/')}.py"
    return bool(module) and f'"{flag}"' in source.read_text()


def exported_tree(directory: Path) -> Path:
    """This checkout's tree, as the docs export an older commit for `--baseline`."""
    directory.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory


def tiny_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tar:
        tar.add(ROOT / "bench", arcname="bench")
    return path


def needs_the_vm(module: str, arguments: list[str]) -> bool:
    return module == "bench.compressed_send" and "--ratio-model" not in arguments


def vm_is_up() -> bool:
    """The VM's key is there and its SSH port answers (scripts/openzfs-vm.sh started it)."""
    if not (VM_CACHE / "id_ed25519").exists():
        return False
    try:
        socket.create_connection(("127.0.0.1", VM_PORT), timeout=2).close()
    except OSError:
        return False
    return True


COMMANDS = documented_commands()


def test_the_docs_show_bench_commands() -> None:
    """The scan itself finds the documented commands (an empty list would test nothing)."""
    modules = {module for module, _ in COMMANDS}
    expected = {"bench.throughput", "bench.restore", "bench.s3_upload", "bench.s3_restore"}
    assert expected <= modules, modules


@pytest.mark.parametrize(
    ("module", "arguments"), COMMANDS, ids=[" ".join([m, *a]) for m, a in COMMANDS]
)
def test_documented_bench_command_runs_at_a_tiny_size(
    module: str, arguments: list[str], tmp_path: Path, zfs_fuse: None
) -> None:
    if needs_the_vm(module, arguments) and not vm_is_up():
        pytest.skip("needs the OpenZFS VM (scripts/openzfs-vm.sh)")
    argv = [sys.executable, "-m", module, *shrunk(arguments, tmp_path, module)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{shlex.join(argv)}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    assert "ratio" in done.stdout or "target" in done.stdout or "MB" in done.stdout, done.stdout
