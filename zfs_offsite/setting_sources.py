"""Raw settings with their origins: a TOML file (with line), `.env`, the environment, arguments.

Generic over any pydantic model: the model's fields are the only list of valid
keys, so a section added later is checked like the others. A key the model
does not know, at any depth and from any source, becomes an error line with a
did-you-mean instead of being dropped; every value keeps where it came from so
an error or `zfs-offsite config` can name the file line or the variable.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import tomllib
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

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


def _is_complex(annotation: Any) -> bool:
    """Whether an environment value for this field is JSON (as pydantic-settings reads it)."""
    if section_model(annotation) is not None:
        return True
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_is_complex(a) for a in get_args(annotation) if a is not type(None))
    return (origin or annotation) in (list, tuple, set, frozenset, dict)


def walk_keys(model: type[BaseModel], prefix: Key = ()) -> Iterator[tuple[Key, bool]]:
    """Every settable key below `model` and whether it is a section."""
    for name, info in model.model_fields.items():
        sub = section_model(info.annotation)
        yield (*prefix, name), sub is not None
        if sub is not None:
            yield from walk_keys(sub, (*prefix, name))


def dotted(key: Key) -> str:
    return ".".join(key)


def _unknown_key_hint(key: Key, root: type[BaseModel]) -> str:
    """A did-you-mean for a misspelt or misplaced key, else the keys its section takes."""
    section: type[BaseModel] = root
    for part in key[:-1]:
        section = section_model(section.model_fields[part].annotation) or section
    siblings = list(section.model_fields)
    close = difflib.get_close_matches(key[-1], siblings, n=1, cutoff=0.6)
    if close:
        return f"did you mean {dotted((*key[:-1], close[0]))}?"
    elsewhere = [k for k, _ in walk_keys(root) if k[-1] == key[-1]]
    if elsewhere:
        return f"did you mean {' or '.join(dotted(k) for k in elsewhere)}?"
    where = f"[{dotted(key[:-1])}]" if key[:-1] else "the top level"
    return f"{where} takes {', '.join(siblings)}"


def _same_origin(origin: Origin, _key: Key) -> Origin:
    return origin


def _walk(
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
            kept[str(name)] = _walk(value, sub, root, key, origin_for, layer)
        else:
            kept[str(name)] = value
            layer.origins[key] = origin_for(key)
    return kept


def from_arguments(values: Mapping[str, Any], root: type[BaseModel]) -> Layer:
    """Keyword arguments to `load_settings` (tests, flows): origin "argument"."""
    layer = Layer()
    layer.data = _walk(values, root, root, (), lambda _k: ARGUMENT, layer)
    return layer


# -- TOML ---------------------------------------------------------------------------------

_BARE_OR_QUOTED = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_DOTTED = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*(?P<key>{_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*(?P<key>{_DOTTED})\s*=")
_PART = re.compile(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)")


def _split(dotted_key: str) -> Key:
    return tuple(next(g for g in m.groups() if g is not None) for m in _PART.finditer(dotted_key))


def toml_key_lines(text: str) -> dict[Key, int]:
    """Line number (1-based) of each table header and key in TOML text.

    A scan, not a parser: enough to point at a key. Lines inside multi-line
    strings are skipped; keys inside an inline table share its line.
    """
    lines: dict[Key, int] = {}
    table: Key = ()
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        if header := _HEADER.match(line):
            table = _split(header["key"])
            lines.setdefault(table, number)
        elif assign := _ASSIGN.match(line):
            lines.setdefault(table + _split(assign["key"]), number)
        for quotes in ('"""', "'''"):
            if line.count(quotes) % 2 == 1:
                in_string = quotes
    return lines


def from_toml(path: Path, root: type[BaseModel], config_hint: str) -> Layer:
    """A TOML file's values, each with `file:line`; unreadable or invalid files are an error."""
    layer = Layer()
    shown = path.absolute()
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        layer.errors.append(f"config file {shown} is not valid TOML: {exc}")
        return layer
    except (OSError, UnicodeDecodeError) as exc:
        layer.errors.append(f"config file {shown} cannot be read: {exc}: {config_hint}")
        return layer
    key_lines = toml_key_lines(text)

    def origin_for(key: Key) -> Origin:
        for end in range(len(key), 0, -1):
            if key[:end] in key_lines:
                return Origin(f"{shown}:{key_lines[key[:end]]}")
        return Origin(str(shown))

    layer.data = _walk(data, root, root, (), origin_for, layer)
    return layer


# -- environment and .env --------------------------------------------------------------------


def _env_names(root: type[BaseModel], prefix: str) -> list[str]:
    return [prefix + "__".join(key).upper() for key, _ in walk_keys(root)]


def _unknown_variable(
    name: str, where: str, root: type[BaseModel], prefix: str, exempt: frozenset[str]
) -> str:
    rest = name.upper().removeprefix(prefix)
    names = {n.removeprefix(prefix): n for n in [*_env_names(root, prefix), *sorted(exempt)]}
    close = difflib.get_close_matches(rest, list(names), n=1, cutoff=0.75)
    if close:
        hint = f"did you mean {names[close[0]]}?"
    else:
        hint = (
            f"no such setting; names are {prefix}<KEY> or {prefix}<SECTION>__<KEY>, "
            f"e.g. {prefix}TARGET__URL"
        )
    return f"unknown variable {name} ({where}): {hint}"


def _from_variables(
    variables: Mapping[str, str],
    root: type[BaseModel],
    prefix: str,
    exempt: frozenset[str],
    where: Callable[[str], str],
    origin_of: Callable[[str], Origin],
) -> Layer:
    """Variables named `<prefix><KEY>` or `<prefix><SECTION>__<KEY>`, case-insensitive.

    Lists and whole sections are JSON, as with pydantic-settings; every other
    value stays a string for the model to convert.
    """
    layer = Layer()
    for name, value in variables.items():
        upper = name.upper()
        if not upper.startswith(prefix) or upper in exempt:
            continue
        parts = tuple(upper.removeprefix(prefix).lower().split("__"))
        model: type[BaseModel] | None = root
        annotation: Any = None
        for part in parts:
            if model is None or part not in model.model_fields:
                annotation = None
                break
            annotation = model.model_fields[part].annotation
            model = section_model(annotation)
        if annotation is None:
            layer.errors.append(_unknown_variable(name, where(name), root, prefix, exempt))
            continue
        origin = origin_of(name)
        parsed: Any = value
        if _is_complex(annotation):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                example = (
                    f"or set one key: {name}__<KEY>"
                    if model is not None
                    else f"""e.g. {name}='["a", "b"]'"""
                )
                layer.errors.append(
                    f"setting {dotted(parts)} ({origin}): not valid JSON ({exc.msg}); {example}"
                )
                continue
        nested: dict[str, Any] = {parts[-1]: parsed}
        for part in reversed(parts[:-1]):
            nested = {part: nested}
        cleaned = _walk(nested, root, root, (), functools.partial(_same_origin, origin), layer)
        layer.data = deep_merge(layer.data, cleaned)
    return layer


def from_environ(
    environ: Mapping[str, str], root: type[BaseModel], prefix: str, exempt: frozenset[str]
) -> Layer:
    """Process environment variables (sorted, for a stable error order): origin `env NAME`."""
    return _from_variables(
        dict(sorted(environ.items())),
        root,
        prefix,
        exempt,
        lambda _n: "env",
        lambda n: Origin(f"env {n}"),
    )


_DOTENV_KEY = re.compile(r"^\s*(?:export\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*=")


def from_dotenv(path: Path, root: type[BaseModel], prefix: str, exempt: frozenset[str]) -> Layer:
    """A `.env` file's `<prefix>…` keys (others are left to other tools): origin `.env:line`."""
    if not path.is_file():
        return Layer()
    from dotenv import dotenv_values  # installed with pydantic-settings

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Layer(errors=[f"{path} cannot be read: {exc}"])
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if match := _DOTENV_KEY.match(line):
            lines.setdefault(match["name"], number)
    values = {k: v for k, v in dotenv_values(path).items() if v is not None}

    def label(name: str) -> str:
        return f"{path}:{lines[name]}" if name in lines else str(path)

    return _from_variables(values, root, prefix, exempt, label, lambda n: Origin(label(n)))


# -- merging ---------------------------------------------------------------------------------


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
