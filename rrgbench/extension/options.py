"""Typed, validated option schemas for components, recipes, datasets and the run itself.

A schema is a frozen dataclass whose fields are declared with :func:`option` (default, help text,
choices, bounds). :func:`validate` turns a plain mapping (from a recipe, a YAML file or
``--set key=value`` strings) into an instance, coercing strings and refusing unknown keys with a
"did you mean" (:func:`unknown_option`, shared with the run configuration's layers); :func:`check_fields`
checks an instance built directly. Schemas import nothing heavy, so ``rrgbench list --options`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rrgbench.errors import ConfigError, did_you_mean


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """Declare one option field: its default, a one-line help text, and optional constraints."""
    meta = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NoOptions:
    """Schema of a component that takes no options."""


@dataclass(frozen=True)
class OptionInfo:
    """Description of one option, for listings and documentation."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None


def describe(schema: type) -> list[OptionInfo]:
    """List the options a schema declares, in declaration order."""
    hints = typing.get_type_hints(schema)
    infos = []
    for f in dataclasses.fields(schema):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        infos.append(
            OptionInfo(f.name, _type_name(hints[f.name]), default, f.metadata.get("help", ""),
                       f.metadata.get("choices"))
        )
    return infos


def validate(schema: type, values: Mapping[str, Any], where: str) -> Any:
    """Build a schema instance from ``values``; ``where`` names the owner in error messages."""
    hints = typing.get_type_hints(schema)
    known = {f.name: f for f in dataclasses.fields(schema)}
    kwargs = {}
    for key, raw in values.items():
        if key not in known:
            raise unknown_option(where, key, list(known))
        kwargs[key] = _check(key, coerce(raw, hints[key], f"{where}.{key}"), known[key].metadata, where)
    return schema(**kwargs)


def unknown_option(where: str, key: str, known: Sequence[str], *, shown: str | None = None) -> ConfigError:
    """The error for ``key``, an option ``where`` does not declare (``known``: the ones it does, in order);
    ``shown`` names the option in the message (default ``key``)."""
    hint = did_you_mean(key, known) or (f"; valid: {', '.join(known)}" if known else "; it takes no options")
    return ConfigError(f"{where}: unknown option '{shown or key}'{hint}")


def as_dict(instance: Any) -> dict[str, Any]:
    """The options of a schema instance as a plain JSON-able dict."""
    return dataclasses.asdict(instance)


def coerce(raw: Any, hint: Any, where: str) -> Any:
    """Convert ``raw`` (often a string from the command line) to the annotated type ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_null = raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null"))
        if is_null and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(raw, inner[0], where)
    if origin in (list, tuple):
        items = _as_list(raw, where)
        item_type = args[0] if args else str
        converted = [_check_finite(coerce(item, item_type, where), where) for item in items]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if isinstance(raw, str):
            raw = _parse_json(raw, where)
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        return {coerce(k, key_type, where): _check_finite(coerce(v, value_type, f"{where}.{k}"), f"{where}.{k}")
                for k, v in raw.items()}
    return _coerce_scalar(raw, hint, where)


def _coerce_scalar(raw: Any, hint: Any, where: str) -> Any:
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {raw!r}")
    if hint in (int, float):
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: expected a number, got {raw!r}")
        try:
            value = hint(raw) if hint is float or not isinstance(raw, str) else int(float(raw))
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {raw!r}") from None
        if hint is int and isinstance(raw, (float, str)) and float(raw) != value:
            raise ConfigError(f"{where}: expected an integer, got {raw!r}")
        return value
    if hint is str:
        return str(raw)
    return raw


def _check_finite(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value} is not a finite number")
    return value


def _as_list(raw: Any, where: str) -> list[Any]:
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            parsed = _parse_json(text, where)
            if isinstance(parsed, list):
                return parsed
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(raw, (list, tuple)):
        return list(raw)
    return [raw]


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from None


def check_fields(instance: Any, where: str) -> None:
    """Check every field of a schema instance against its declared choices and bounds (for a schema's
    ``__post_init__``, so that building it directly is checked as :func:`validate` checks)."""
    for f in dataclasses.fields(instance):
        _check(f.name, getattr(instance, f.name), f.metadata, where)


def _check(key: str, value: Any, meta: Mapping[str, Any], where: str) -> Any:
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(
            f"{where}.{key}: {value!r} is not one of {', '.join(map(str, choices))}"
            + did_you_mean(str(value), map(str, choices))
        )
    low, high = meta.get("min"), meta.get("max")
    _check_finite(value, f"{where}.{key}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and value < low:
            raise ConfigError(f"{where}.{key}: {value} is below the minimum {low}")
        if high is not None and value > high:
            raise ConfigError(f"{where}.{key}: {value} is above the maximum {high}")
    return value


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Parse ``--set section.key=value`` strings into a flat ``{"section.key": "value"}`` mapping."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. memory.size=4096), got {pair!r}")
        parsed[key.strip()] = value.strip()
    return parsed
