"""A small base for the configuration dataclasses of every part.

Each part of v2meow (transformer, stage, codec, encoder ...) has a dataclass config. Configs are
validated when built (``__post_init__`` calls :meth:`Config.validate`), round-trip through plain dicts
(JSON and YAML), and refuse unknown keys so that a typo in a YAML preset is an error, not a silent
default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from v2meow.errors import ConfigError

C = TypeVar("C", bound="Config")


def _is_config_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Config)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Turn a plain (JSON/YAML) value into the annotated type ``tp`` (nested configs, tuples)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _convert(args[0], value, where)
        return value
    if _is_config_type(tp):
        if isinstance(tp, type) and isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}.")
        return tp.from_dict(value, where=where)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}.")
        inner = args[0] if args else Any
        items = [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{where} must be of type {tp.__name__}, got {value!r}.")
    return value


@dataclasses.dataclass
class Config:
    """Base class: subclasses are dataclasses whose fields are plain values or other Configs."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` when a value is out of range. Subclasses extend this."""

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], where: str | None = None) -> C:
        where = where or cls.__name__
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}.")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}.")
        kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
        try:
            return cls(**kwargs)
        except TypeError as e:  # a required field is missing
            raise ConfigError(f"{where}: {e}.") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Config):
                v = v.to_dict()
            elif isinstance(v, (list, tuple)):
                v = [x.to_dict() if isinstance(x, Config) else x for x in v]
            out[f.name] = v
        return out

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


def check(cond: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``cond`` holds."""
    if not cond:
        raise ConfigError(message)


def forwarded(owner: str, name: str) -> Any:
    """A read-only property answering ``self.<owner>.<name>``: a number a part exposes as its config (or a part
    it wraps) declares it, e.g. a codec's sample rate."""
    return property(lambda self: getattr(getattr(self, owner), name), doc=f"``{owner}.{name}``.")


def config_property(name: str) -> Any:
    """:func:`forwarded` from ``self.config``."""
    return forwarded("config", name)
