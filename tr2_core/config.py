"""Typed configuration from YAML files: dataclasses, unknown keys fail.

Configurations are data: named ones ship inside the package as
``tr2_core/configs/<subdir>/<name>.yaml`` (package data, so a wheel or a colcon
install finds them as well as a checkout); any other YAML file is given by its
path. A config file maps onto a
(possibly nested) dataclass; every key must be a field, every value must have
the field's type. Command-line overrides use dotted keys
(``fusion.temporal_layers=1``) parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tr2_core.errors import ConfigError

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""The named configs, ``tr2_core/configs/{models,train}/*.yaml``: package data
(pyproject ``package-data``; colcon installs the package directory whole), so
they travel with every installed copy of ``tr2_core``."""


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (tuple, list, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        converted = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is not list else converted
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types raise
    :class:`ConfigError` naming the dotted key."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where}: {e}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain dict (YAML/JSON-ready) of a config dataclass; tuples become lists."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(obj))


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested dict copy."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE (e.g. fusion.layers=1)")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def resolve_config_path(name_or_path: str | Path, subdir: str) -> Path:
    """A config given as a file path, or as a name of ``tr2_core/configs/<subdir>/<name>.yaml``."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    candidate = CONFIG_DIR / subdir / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR / subdir).glob("*.yaml"))
        raise ConfigError(f"unknown config {name_or_path!r} in {subdir}/; known: {known}")
    return candidate


def _deep_merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_config_data(name_or_path: str | Path, subdir: str, _seen: tuple = ()) -> dict[str, Any]:
    """The mapping of a config file with its ``base:`` chain resolved.

    A file may start with ``base: NAME`` (a config of the same folder, or a
    path): it then holds only what differs from that config, merged key by key
    over it. Ablation configs are written this way.
    """
    path = resolve_config_path(name_or_path, subdir)
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: `base:` chain loops back to itself")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: `base` must be a config name or path, got {base!r}")
    if Path(base).suffix in (".yaml", ".yml") and not Path(base).is_absolute():
        base = str(path.parent / base)
    parent = read_config_data(base, subdir, (*_seen, path.resolve()))
    return _deep_merge(parent, data)


def load_config(
    cls: type[T], name_or_path: str | Path, subdir: str, overrides: Sequence[str] = ()
) -> T:
    """Load ``cls`` from a YAML file (or named config, ``base:`` resolved) with
    dotted overrides."""
    data = read_config_data(name_or_path, subdir)
    where = str(resolve_config_path(name_or_path, subdir))
    return from_dict(cls, apply_overrides(data, overrides), where=where)
