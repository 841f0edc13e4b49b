"""`load_settings`: build the root `Settings` from its sources, or fail naming every problem.

pydantic-settings reads and merges the sources; what they dropped (unknown keys,
broken files) and what pydantic refuses (invalid values) become one
SettingsError, each line naming the setting and where it was set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from zfs_offsite.settings.model import Settings
from zfs_offsite.settings.origins import Key, Layer, SettingsError, dotted, section_model
from zfs_offsite.settings.sources import LoadRequest, collecting


def _field_key(loc: tuple[int | str, ...]) -> tuple[Key, str]:
    """The settings key of an error location and its display name (`source.datasets[0]`)."""
    key: list[str] = []
    name = ""
    model: type[BaseModel] | None = Settings
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
            continue
        if model is None or part not in model.model_fields:
            break  # a union member tag or similar: not a setting name
        key.append(part)
        name += ("." if name else "") + part
        model = section_model(model.model_fields[part].annotation)
    return tuple(key), name


def _invalid_lines(errors: Sequence[Mapping[str, Any]], gathered: Layer) -> list[str]:
    """One line per invalid setting and origin, its messages joined with `; or`."""
    messages: dict[tuple[str, str], list[str]] = {}
    for error in errors:
        key, name = _field_key(error["loc"])
        where = (name or "settings", str(gathered.origin_of(key)))
        message = error["msg"].removeprefix("Value error, ")
        if message not in messages.setdefault(where, []):
            messages[where].append(message)
    return [
        f"setting {name} ({origin}): {'; or '.join(texts)}"
        for (name, origin), texts in messages.items()
    ]


def load_with_origins(
    config_file: Path | None, overrides: dict[str, Any]
) -> tuple[Settings, Layer]:
    """The settings and every source's merged values and origins; SettingsError if any is wrong."""
    request = LoadRequest(config_file)
    settings: Settings | None = None
    invalid: Sequence[Mapping[str, Any]] = []
    with collecting(request):
        try:
            settings = Settings(**overrides)
        except ValidationError as exc:
            invalid = exc.errors()
    gathered = request.merged()
    lines = [*gathered.errors, *_invalid_lines(invalid, gathered)]
    if lines or settings is None:
        raise SettingsError(lines)
    settings._origins = {dotted(k): str(v) for k, v in gathered.origins.items()}
    return settings, gathered


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Load settings; raise SettingsError (a ConfigError) naming every problem and its source."""
    return load_with_origins(config_file, overrides)[0]
