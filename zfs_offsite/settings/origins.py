"""Raw setting values with where each came from, and the keys no model knows.

Generic over any pydantic model: the model's fields are the only list of valid
keys, so a section added later is checked like the others. A key the model
does not know, at any depth and from any source, becomes an error line with a
did-you-mean instead of being dropped; every value keeps its `Origin` so an
error or `zfs-offsite config` can name the file line or the variable.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from zfs_offsite.errors import ConfigError

Key = tuple[str, ...]


@dataclass(frozen=True)
class Origin:
    """Where one value came from, as the user would look it up."""

    label: str  # "/etc/zfs-offsite.toml:12", "env ZFS_OFFSITE_TARGET__URL", ".env:3", ...

    def __str__(self) -> str:
        return self.label


DEFAULT = Origin("default")
ARGUMENT = Origin("argument")


@dataclass
class Layer:
    """One source's values (unknown keys already removed), their origins and its errors."""

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[Key, Origin] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def origin_of(self, key: Key) -> Origin:
        """The origin of `key`: its own, an enclosing one, or one below it; else the default."""
        for end in range(len(key), 0, -1):
            if key[:end] in self.origins:
                return self.origins[key[:end]]
        below = sorted(k for k in self.origins if k[: len(key)] == key)
        return self.origins[below[0]] if below else DEFAULT


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (`X` or `X | None`), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [a for a in get_args(annotation) if section_model(a) is not None]
        if len(models) == 1:
            return section_model(models[0])
    return None


def is_complex(annotation: Any) -> bool:
    """Whether an environment value for this field is JSON (as pydantic-settings reads it)."""
    if section_model(annotation) is not None:
        return True
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(is_complex(a) for a in get_args(annotation) if a is not type(None))
    return (origin or annotation) in (list, tuple, set, frozenset, dict)


def walk_keys(model: type[BaseModel], prefix: Key = ()) -> Iterator[tuple[Key, bool]]:
    """Every settable key below `model` and whether it is a section."""
    for name, info in model.model_fields.items():
        sub = section_model(info.annotation)
        yield (*prefix, name), sub is not None
        if sub is not None:
            yield from walk_keys(sub, (*prefix, name))


def dotted(key: Key) -> str:
    """`("target", "url")` as users write it: `target.url`."""
    return ".".join(key)


def _unknown_key_hint(key: Key, root: type[BaseModel]) -> str:
    """A did-you-mean for a misspelt or misplaced key, else the keys its section takes."""
    section: type[BaseModel] = root
    for part in key[:-1]:
        section = section_model(section.model_fields[part].annotation) or section
    refused = getattr(section, "refused_key_hint", None)
    if callable(refused) and (why := refused(key[-1])):
        return str(why)
    siblings = list(section.model_fields)
    close = difflib.get_close_matches(key[-1], siblings, n=1, cutoff=0.6)
    if close:
        return f"did you mean {dotted((*key[:-1], close[0]))}?"
    elsewhere = [k for k, _ in walk_keys(root) if k[-1] == key[-1]]
    if elsewhere:
        return f"did you mean {' or '.join(dotted(k) for k in elsewhere)}?"
    where = f"[{dotted(key[:-1])}]" if key[:-1] else "the top level"
    return f"{where} takes {', '.join(siblings)}"


def keep_known(
    data: Mapping[str, Any],
    model: type[BaseModel],
    root: type[BaseModel],
    prefix: Key,
    origin_for: Callable[[Key], Origin],
    layer: Layer,
) -> dict[str, Any]:
    """Copy `data` keeping only keys `model` knows; record origins and unknown-key errors."""
    kept: dict[str, Any] = {}
    for name, value in data.items():
        key = (*prefix, str(name))
        info = model.model_fields.get(str(name))
        if info is None:
            hint = _unknown_key_hint(key, root)
            layer.errors.append(f"unknown setting {dotted(key)} ({origin_for(key)}): {hint}")
            continue
        sub = section_model(info.annotation)
        if sub is not None and isinstance(value, Mapping):
            kept[str(name)] = keep_known(value, sub, root, key, origin_for, layer)
        else:
            kept[str(name)] = value
            layer.origins[key] = origin_for(key)
    return kept


def deep_merge(low: dict[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """`high` over `low`, sections merged key by key (as pydantic-settings does)."""
    merged = dict(low)
    for name, value in high.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), dict):
            merged[name] = deep_merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def merge(layers: list[Layer]) -> Layer:
    """The layers from weakest to strongest as one; a value replaced drops the origins below it."""
    result = Layer()
    for layer in layers:
        result.data = deep_merge(result.data, layer.data)
        for key, origin in layer.origins.items():
            for old in [k for k in result.origins if k[: len(key)] == key or key[: len(k)] == k]:
                del result.origins[old]
            result.origins[key] = origin
        result.errors.extend(layer.errors)
    return result


class SettingsError(ConfigError):
    """Every wrong setting at once; `lines` holds one self-contained line per problem."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = tuple(lines)
        head = [f"the settings have {len(lines)} errors:"] if len(lines) > 1 else []
        super().__init__("\n".join(head + lines))
