"""Configuration: pydantic models loaded from YAML with `key=value` overrides.

Every stage defines its own section model (``extra="forbid"``). ``load_config`` reads a YAML file into any
of them and reports a bad key or value with the file name, the dotted key path and the reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are an error, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the file and the key."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` into a key path and a YAML-typed value (``npcs=20`` gives the int 20)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({error})") from error
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key=value`` override set at its dotted path."""
    result = json.loads(json.dumps(data)) if data else {}
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return result


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping safely; a missing file or non-mapping content is a ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, not {type(data).__name__}")
    return data


def build_config(
    model: type[ModelT], data: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), source: str = "<dict>"
) -> ModelT:
    """Validate ``data`` (plus overrides) as ``model``; errors name ``source`` and the key path."""
    merged = apply_overrides(data, overrides)
    try:
        return model.model_validate(merged)
    except ValidationError as error:
        where = source if not overrides else f"{source} (with overrides {list(overrides)})"
        raise ConfigError(_format_validation_error(error, where)) from None


def load_config(
    model: type[ModelT], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> ModelT:
    """Load ``model`` from a YAML file (or defaults when ``path`` is None), then apply overrides."""
    data = read_yaml(path) if path is not None else {}
    return build_config(model, data, overrides, source=str(path) if path is not None else "<defaults>")


def config_hash(config: BaseModel) -> str:
    """Short stable hash of a config's JSON form, for run and episode metadata."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dump_yaml(config: BaseModel, path: str | Path) -> None:
    """Write a config as YAML (the resolved config of a run)."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
