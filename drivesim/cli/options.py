"""Shared CLI options and helpers (config file + key=value overrides, error reporting)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from drivesim.config import ConfigError, load_config

ModelT = TypeVar("ModelT", bound=BaseModel)
console = Console(stderr=True)

ConfigOption = typer.Option(None, "--config", "-c", help="YAML config file (defaults are used for missing keys).")
OverridesArgument = typer.Argument(None, help="Config overrides as key=value, e.g. sim.traffic.npcs=10.")


def load_cli_config(model: type[ModelT], path: Path | None, overrides: list[str] | None) -> ModelT:
    """Load a config for a command; a bad file, key or value exits with the message and status 2."""
    try:
        return load_config(model, path, overrides or [])
    except ConfigError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> None:
    """Print an error and exit."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)
