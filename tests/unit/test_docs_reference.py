"""The generated reference pages say what the code says, or a test names the fix.

docs/reference/{configuration,cli,exit-codes}.md are written by
scripts/docs_reference.py from the settings models, the typer app and
cli/exit_codes.py. A change to any of those without regenerating leaves a page
that tells users something untrue; these tests catch it before a release.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel, Field

from cli import exit_codes

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "docs_reference.py"
    spec = importlib.util.spec_from_file_location("docs_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_reference"] = module
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


@pytest.mark.parametrize("page", sorted(GENERATOR.PAGES))
def test_the_committed_page_is_what_the_code_generates(page: str) -> None:
    committed = ROOT / page
    assert committed.is_file(), f"{page} is missing: run {GENERATOR.REGENERATE}"
    assert committed.read_text() == GENERATOR.PAGES[page](), (
        f"{page} is stale (the code changed since it was generated): run {GENERATOR.REGENERATE}"
    )


def test_every_setting_is_in_the_configuration_reference_with_its_variable() -> None:
    page = (ROOT / "docs" / "reference" / "configuration.md").read_text()
    from zfs_offsite.settings import Settings

    for path, _field, _model in GENERATOR.settings_fields(Settings):
        assert f"### `{path}`" in page
        assert f"`ZFS_OFFSITE_{path.upper().replace('.', '__')}`" in page


def test_every_command_is_in_the_cli_reference() -> None:
    import typer.main

    from cli.app import app

    page = (ROOT / "docs" / "reference" / "cli.md").read_text()
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert len(commands) > 5
    for name in commands:
        assert f"## `zfs-offsite {name}`" in page


def test_a_setting_without_a_description_stops_the_generator_naming_it() -> None:
    class Inner(BaseModel):
        documented: int = Field(1, description="Has one.")
        bare: int = 2

    class Root(BaseModel):
        inner: Inner = Field(default_factory=Inner)
        top: str = "x"

    with pytest.raises(GENERATOR.UndocumentedSetting) as raised:
        GENERATOR.configuration_page(Root)
    assert "inner.bare, top" in str(raised.value)
    assert "inner.documented" not in str(raised.value)


def test_every_exit_code_the_commands_use_has_a_documented_meaning() -> None:
    codes = {
        value
        for name, value in vars(exit_codes).items()
        if name.isupper() and isinstance(value, int)
    }
    assert codes == set(exit_codes.MEANINGS)
    page = (ROOT / "docs" / "reference" / "exit-codes.md").read_text()
    for code in codes:
        assert f"\n| {code} | " in page


def test_a_stale_page_is_reported_with_the_command_that_regenerates_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(GENERATOR.PAGES, "docs/reference/exit-codes.md", lambda: "changed\n")
    assert GENERATOR.main(["--check"]) == 1
    expected = f"docs/reference/exit-codes.md is stale: run {GENERATOR.REGENERATE}"
    assert expected in capsys.readouterr().err.splitlines()
