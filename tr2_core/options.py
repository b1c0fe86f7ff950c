"""Declared options: a frozen dataclass whose every field carries its default,
its help text and its constraints, so that one declaration yields the
validation, the command-line flags and the ROS 2 parameter descriptors.

Declare a field with :func:`option`; read the declarations back with
:func:`option_specs`. The Python type of the default is the option's type
(``bool``, ``int``, ``float`` or ``str``, the four ROS 2 scalar parameter
types). Validation messages name the option the way the caller shows it
(``--window`` on the command line, ``parameter 'window'`` on the node).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tr2_core.errors import ConfigError

Scalar = bool | int | float | str
T = TypeVar("T")


def option(
    default: Scalar,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    pattern: str | None = None,
    what: str = "",
    flag: str | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field declaring one option.

    Args:
        default: the default; its type is the option's type.
        help: one or two sentences, shown by ``--help`` and ``ros2 param describe``.
        choices: the allowed strings.
        low, high: the allowed range (both given or neither); ``open_low``
            excludes ``low`` itself.
        pattern: a regular expression a string must match in full; ``what``
            says in words what it accepts (used in messages).
        flag: command-line spelling without ``--`` (default: the name with
            dashes, ``score_threshold`` -> ``score-threshold``).
        metavar: the value's name in ``--help``.
    """
    if (low is None) != (high is None):
        raise ValueError("give both low and high, or neither")
    meta = {"help": help, "choices": choices, "low": low, "high": high, "open_low": open_low}
    meta |= {"pattern": re.compile(pattern) if pattern else None, "what": what}
    meta |= {"flag": flag, "metavar": metavar}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionSpec:
    """One declared option, read from its dataclass field."""

    name: str
    default: Scalar
    help: str
    choices: tuple[str, ...] | None
    low: float | None
    high: float | None
    open_low: bool
    pattern: re.Pattern[str] | None
    what: str
    flag: str
    metavar: str | None

    @classmethod
    def of(cls, field: dataclasses.Field) -> OptionSpec:
        m = field.metadata
        flag = m["flag"] or field.name.replace("_", "-")
        return cls(field.name, field.default, m["help"], m["choices"], m["low"], m["high"],
                   m["open_low"], m["pattern"], m["what"], flag, m["metavar"])  # fmt: skip

    def field(self, **changes: Any) -> Any:
        """A new dataclass field declaring this option, with ``changes`` (e.g. a
        different ``default`` on another surface) applied."""
        spec = dataclasses.replace(self, **changes)
        return option(
            spec.default, spec.help, choices=spec.choices, low=spec.low, high=spec.high,
            open_low=spec.open_low, pattern=spec.pattern.pattern if spec.pattern else None,
            what=spec.what, flag=spec.flag, metavar=spec.metavar,
        )  # fmt: skip

    @property
    def constraints(self) -> str:
        """The constraints in words ('' if none)."""
        if self.choices is not None:
            return "one of: " + ", ".join(self.choices)
        if self.pattern is not None:
            return self.what
        if self.low is not None:
            return f"in {'(' if self.open_low else '['}{self.low}, {self.high}]"
        return ""

    def convert(self, value: Any, where: str, *, strict_types: bool = False) -> Scalar:
        """``value`` as the option's type; an int for a float option is accepted
        unless ``strict_types`` (ROS 2 rejects ``5`` for a double parameter).

        Raises:
            ConfigError: wrong type, naming ``where``.
        """
        kind = type(self.default)
        if kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true/false, got {value!r}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}: expected an integer, got {value!r}")
        elif kind is float:
            ok = isinstance(value, float) or (isinstance(value, int) and not strict_types)
            if isinstance(value, bool) or not ok:
                hint = (
                    " (write it with a decimal point, e.g. 5.0)" if isinstance(value, int) else ""
                )
                raise ConfigError(f"{where}: expected a floating-point number, got {value!r}{hint}")
            value = float(value)
        elif not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value

    def check(self, value: Scalar, where: str) -> None:
        """Raises :class:`ConfigError` naming ``where`` if ``value`` breaks a constraint."""
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where}: {value!r} is not one of {list(self.choices)}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise ConfigError(f"{where}: {value!r} is not {self.what}")
        if self.low is not None:
            above = value > self.low if self.open_low else value >= self.low
            if not (above and value <= self.high):  # also rejects NaN
                raise ConfigError(f"{where}: {value!r} is outside {self.constraints[3:]}")


def option_specs(cls: type) -> tuple[OptionSpec, ...]:
    """The declared options of dataclass ``cls``, in declaration order."""
    return tuple(OptionSpec.of(f) for f in dataclasses.fields(cls))


def validate_options(instance: Any, where: Callable[[OptionSpec], str]) -> None:
    """Convert and check every option of a frozen dataclass instance in place
    (ints given for floats become floats); for ``__post_init__``.

    Raises:
        ConfigError: naming the option as ``where(spec)`` shows it.
    """
    for spec in option_specs(type(instance)):
        value = spec.convert(getattr(instance, spec.name), where(spec))
        object.__setattr__(instance, spec.name, value)
        spec.check(value, where(spec))


def options_from_mapping(
    cls: type[T],
    values: Mapping[str, Any],
    where: Callable[[OptionSpec], str],
    *,
    strict_types: bool = False,
) -> T:
    """``cls(**values)`` after checking the names, types and constraints of ``values``.

    Raises:
        ConfigError: unknown name, wrong type or value, naming the option as
            ``where(spec)`` shows it.
    """
    specs = {s.name: s for s in option_specs(cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; known: {sorted(specs)}")
    converted = {}
    for name, value in values.items():
        spec = specs[name]
        converted[name] = spec.convert(value, where(spec), strict_types=strict_types)
        spec.check(converted[name], where(spec))
    return cls(**converted)


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    specs: Iterable[OptionSpec],
) -> None:
    """One ``--flag`` per option (``store_true`` for booleans), with the declared
    help, choices and default; the parsed value lands in ``args.<name>``."""
    for spec in specs:
        kwargs: dict[str, Any] = {"dest": spec.name, "default": spec.default}
        help_text = spec.help
        if isinstance(spec.default, bool):
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = type(spec.default)
            kwargs["metavar"] = spec.metavar
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
            if spec.default != "":
                help_text += f" (default {spec.default})"
        parser.add_argument(f"--{spec.flag}", help=help_text, **kwargs)


def cli_name(spec: OptionSpec) -> str:
    """How the command line names an option: ``--score-threshold``."""
    return f"--{spec.flag}"
