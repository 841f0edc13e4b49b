"""The sources the root `Settings` loads from, as pydantic-settings sources.

`Settings.settings_customise_sources` puts them in order, strongest first:
arguments (init kwargs: the CLI's overrides, tests), the environment
(`ZFS_OFFSITE_*`, sections nested with `__`), `.env`, the TOML file. Each keeps
only the keys the model knows and hands pydantic-settings the rest to merge and
validate; what each dropped (with a did-you-mean) and where each value came
from (`file:line`, `env VAR`, `.env:line`, `argument`) goes to the active
`LoadRequest`, so `load_settings` can report every problem at once and
`zfs-offsite config` can name every value's origin.

Built-in sources are not enough here: pydantic-settings ignores an unknown
variable, keeps no line numbers and stops at a source's first error.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dotenv import dotenv_values
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource, TomlConfigSettingsSource

from zfs_offsite.errors import ConfigError
from zfs_offsite.settings.files import CONFIG_ENV, config_hint, readable_path, resolve_config_file
from zfs_offsite.settings.origins import (
    ARGUMENT,
    Key,
    Layer,
    Origin,
    SettingsError,
    deep_merge,
    dotted,
    is_complex,
    keep_known,
    merge,
    section_model,
    walk_keys,
)

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic_settings import BaseSettings

ENV_EXEMPT = frozenset({CONFIG_ENV})  # prefixed variables that are not settings
WEAKEST_FIRST = ("toml", "dotenv", "env", "argument")


@dataclass
class LoadRequest:
    """One load: the explicit config file, and each source's layer as it is read.

    `strict` (a `Settings()` built outside `load_settings`): a source with an
    error raises it at once, since nobody would collect it.
    """

    config_file: Path | None = None
    strict: bool = False
    layers: dict[str, Layer] = field(default_factory=dict)

    def add(self, name: str, layer: Layer) -> None:
        if self.strict and layer.errors:
            raise SettingsError(layer.errors)
        self.layers[name] = layer

    def merged(self) -> Layer:
        """Every source's values, origins and errors, weakest first (errors in that order)."""
        return merge([self.layers[name] for name in WEAKEST_FIRST if name in self.layers])


_ACTIVE: ContextVar[LoadRequest | None] = ContextVar("zfs_offsite_settings_load", default=None)


@contextmanager
def collecting(request: LoadRequest) -> Iterator[LoadRequest]:
    """Make `request` the one the sources of a `Settings()` built inside report to."""
    token = _ACTIVE.set(request)
    try:
        yield request
    finally:
        _ACTIVE.reset(token)


def current_request() -> LoadRequest:
    """The active request, or a strict one of its own for a `Settings()` built directly."""
    return _ACTIVE.get() or LoadRequest(strict=True)


class _CheckedSource(PydanticBaseSettingsSource):
    """A source whose values are read and checked at once (not field by field).

    Each reports what it read to the load request, so `config` and errors can name origins.
    """

    def __init__(self, settings_cls: type[BaseSettings], request: LoadRequest) -> None:
        super().__init__(settings_cls)
        self.request = request

    def _report(self, kind: str, layer: Layer) -> dict[str, Any]:
        """Hand `layer` to the request under `kind`; its data is what pydantic merges."""
        self.request.add(kind, layer)
        return layer.data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole layer


class ArgumentSource(_CheckedSource):
    """Keyword arguments of `Settings(...)`/`load_settings(...)` (CLI overrides): "argument"."""

    def __init__(
        self, settings_cls: type[BaseSettings], init_kwargs: Mapping[str, Any], request: LoadRequest
    ) -> None:
        super().__init__(settings_cls, request)
        self.init_kwargs = dict(init_kwargs)

    def __call__(self) -> dict[str, Any]:
        if self.request.strict:
            # `Settings(...)`/`Settings.model_validate(...)` outside load_settings: the model
            # itself refuses an unknown key (ValidationError), as every section model does.
            return dict(self.init_kwargs)
        layer = Layer()
        root = self.settings_cls
        layer.data = keep_known(self.init_kwargs, root, root, (), lambda _k: ARGUMENT, layer)
        return self._report("argument", layer)


class EnvSource(_CheckedSource):
    """Process environment variables `<env_prefix><KEY>`, `<env_prefix><SECTION>__<KEY>`."""

    def __call__(self) -> dict[str, Any]:
        layer = variables_layer(
            dict(sorted(os.environ.items())),  # sorted: a stable error order
            self.settings_cls,
            _names(self),
            lambda _n: "env",
            lambda n: Origin(f"env {n}"),
        )
        return self._report("env", layer)


class DotenvSource(_CheckedSource):
    """The `env_file` (`.env`)'s `<env_prefix>…` keys (others are left to other tools)."""

    def __init__(self, settings_cls: type[BaseSettings], request: LoadRequest) -> None:
        super().__init__(settings_cls, request)
        self.path = Path(str(self.config.get("env_file") or ".env"))

    def __call__(self) -> dict[str, Any]:
        return self._report("dotenv", self._read())

    def _read(self) -> Layer:
        path = self.path
        if not path.is_file():
            return Layer()
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

        return variables_layer(
            values, self.settings_cls, _names(self), label, lambda n: Origin(label(n))
        )


class TomlSource(TomlConfigSettingsSource):
    """The config file (`files.resolve_config_file`), each value with its `file:line`.

    pydantic-settings' TOML source reads the file; this one keeps its text for the
    line numbers, turns a broken file into an error line among the others, and drops
    unknown keys with a did-you-mean.
    """

    def __init__(self, settings_cls: type[BaseSettings], request: LoadRequest) -> None:
        self.request = request
        self.layer = Layer()
        self.text = ""
        try:
            self.shown_path = resolve_config_file(request.config_file)
        except ConfigError as exc:
            self.layer.errors.append(str(exc))
            self.shown_path = None
        path = readable_path(self.shown_path) if self.shown_path is not None else None
        super().__init__(settings_cls, toml_file=path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        shown = (self.shown_path or Path(str(file_path))).absolute()
        try:
            self.text = Path(str(file_path)).read_text(encoding="utf-8")
            return tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            self.layer.errors.append(f"config file {shown} is not valid TOML: {exc}")
        except (OSError, UnicodeDecodeError) as exc:
            self.layer.errors.append(f"config file {shown} cannot be read: {exc}: {config_hint()}")
        return {}

    def __call__(self) -> dict[str, Any]:
        layer = self.layer
        if self.shown_path is not None and self.toml_data:
            shown = self.shown_path.absolute()
            key_lines = toml_key_lines(self.text)

            def origin_for(key: Key) -> Origin:
                for end in range(len(key), 0, -1):
                    if key[:end] in key_lines:
                        return Origin(f"{shown}:{key_lines[key[:end]]}")
                return Origin(str(shown))

            root = self.settings_cls
            layer.data = keep_known(self.toml_data, root, root, (), origin_for, layer)
        self.request.add("toml", layer)
        return layer.data


Names = tuple[str, str]  # the variables' prefix and nesting delimiter: ZFS_OFFSITE_, __


def _names(source: PydanticBaseSettingsSource) -> Names:
    """The model's own `env_prefix` and `env_nested_delimiter`: named once, in its config."""
    config = source.config
    return str(config.get("env_prefix") or "").upper(), str(config.get("env_nested_delimiter"))


# -- TOML lines ------------------------------------------------------------------------------


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


# -- environment variables, from the process or .env -----------------------------------------


_DOTENV_KEY = re.compile(r"^\s*(?:export\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*=")


def _env_names(root: type[BaseModel], prefix: str, delimiter: str) -> list[str]:
    return [prefix + delimiter.join(key).upper() for key, _ in walk_keys(root)]


def _unknown_variable(name: str, where: str, root: type[BaseModel], names: Names) -> str:
    prefix, delimiter = names
    rest = name.upper().removeprefix(prefix)
    known = [*_env_names(root, prefix, delimiter), *sorted(ENV_EXEMPT)]
    names_by_rest = {n.removeprefix(prefix): n for n in known}
    close = difflib.get_close_matches(rest, list(names_by_rest), n=1, cutoff=0.75)
    if close:
        hint = f"did you mean {names_by_rest[close[0]]}?"
    else:
        hint = (
            f"no such setting; names are {prefix}<KEY> or {prefix}<SECTION>{delimiter}<KEY>, "
            f"e.g. {prefix}TARGET{delimiter}URL"
        )
    return f"unknown variable {name} ({where}): {hint}"


def _same(origin: Origin, _key: Key) -> Origin:
    return origin


def variables_layer(
    variables: Mapping[str, str],
    root: type[BaseModel],
    names: Names,
    where: Callable[[str], str],
    origin_of: Callable[[str], Origin],
) -> Layer:
    """Variables named `<prefix><KEY>` or `<prefix><SECTION>__<KEY>`, case-insensitive.

    Lists and whole sections are JSON, as with pydantic-settings; every other
    value stays a string for the model to convert.
    """
    prefix, delimiter = names
    layer = Layer()
    for name, value in variables.items():
        upper = name.upper()
        if not upper.startswith(prefix) or upper in ENV_EXEMPT:
            continue
        parts = tuple(upper.removeprefix(prefix).lower().split(delimiter))
        model: type[BaseModel] | None = root
        annotation: Any = None
        for part in parts:
            if model is None or part not in model.model_fields:
                annotation = None
                break
            annotation = model.model_fields[part].annotation
            model = section_model(annotation)
        if annotation is None:
            layer.errors.append(_unknown_variable(name, where(name), root, names))
            continue
        origin = origin_of(name)
        parsed: Any = value
        if is_complex(annotation):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                example = (
                    f"or set one key: {name}{delimiter}<KEY>"
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
        cleaned = keep_known(nested, root, root, (), functools.partial(_same, origin), layer)
        layer.data = deep_merge(layer.data, cleaned)
    return layer
