"""Exit codes have one definition, cli/exit_codes.py: a name, a number, a meaning.

The exit-codes reference is generated from that file, so a code written as a bare
number elsewhere, or defined without its meaning, would drift from what users read.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import cli
from cli import exit_codes, signals

CLI = Path(cli.__file__).parent
SIGNAL_CODES = (exit_codes.INTERRUPTED, exit_codes.TERMINATED)


def codes_and_meanings() -> dict[str, str]:
    """Each `NAME = <int>` of exit_codes.py and the comment on its line ("" if none)."""
    text = (CLI / "exit_codes.py").read_text()
    comments = {
        tok.start[0]: tok.string.lstrip("# ").strip()
        for tok in tokenize.generate_tokens(io.StringIO(text).readline)
        if tok.type == tokenize.COMMENT
    }
    return {
        node.targets[0].id: comments.get(node.lineno, "")
        for node in ast.parse(text).body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, int)
    }


def test_every_exit_code_has_a_one_line_meaning() -> None:
    """The commands' codes in MEANINGS (the generated page); status's codes by their comment."""
    codes = codes_and_meanings()
    assert {"OK", "USAGE", "INTERRUPTED", "TERMINATED", "STATUS_CRITICAL"} <= set(codes)
    commands = [name for name in codes if not name.startswith("STATUS_")]
    assert [n for n in commands if getattr(exit_codes, n) not in exit_codes.MEANINGS] == []
    assert [n for n, meaning in codes.items() if n.startswith("STATUS_") and not meaning] == []


def test_the_signal_codes_are_written_only_in_exit_codes() -> None:
    """130 and 143 as numbers anywhere else in cli/ would be a second definition."""
    found = [
        f"{path.name}:{node.lineno}"
        for path in sorted(CLI.glob("*.py"))
        if path.name != "exit_codes.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value in SIGNAL_CODES
    ]
    assert found == []
    assert signals.Interrupted("SIGINT").exit_code == exit_codes.INTERRUPTED
    assert signals.Interrupted("SIGTERM").exit_code == exit_codes.TERMINATED
