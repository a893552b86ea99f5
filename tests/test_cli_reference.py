"""CLI reference: docs/cli.md is generated from the typer app and must match a fresh generation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from drivesim.cli.main import app
from drivesim.cli.reference import REPO_ROOT, format_default_value, iter_commands, render_reference

DOCS_CLI = REPO_ROOT / "docs" / "cli.md"
STALE = "docs/cli.md is out of date with the CLI: regenerate it with `make docs`."


@pytest.fixture(scope="module")
def reference() -> str:
    return render_reference()


def _command_paths(command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every visible command of the click tree, walked independently of drivesim.cli.reference."""
    paths = [path]
    for name, child in getattr(command, "commands", {}).items():
        if not child.hidden:
            paths += _command_paths(child, (*path, name))
    return paths


def _section(reference: str, title: str) -> str:
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ |\Z)", reference, re.MULTILINE | re.DOTALL)
    assert match, f"no section for `{title}`"
    return match.group(1)


def test_docs_cli_md_is_up_to_date(reference: str) -> None:
    assert DOCS_CLI.is_file(), STALE
    assert DOCS_CLI.read_text(encoding="utf-8") == reference, STALE


def test_every_command_and_option_is_documented(reference: str) -> None:
    root = typer.main.get_command(app)
    paths = _command_paths(root)
    assert {("bench",), ("data",), ("eval",), ("collect",), ("train-wm",)} <= set(paths)
    assert any(len(path) == 2 and path[0] == "bench" for path in paths)
    assert len(paths) == len(list(iter_commands()))
    for entry in iter_commands():
        section = _section(reference, entry.title)
        for param in entry.command.get_params(entry.ctx):
            if param is entry.command.get_help_option(entry.ctx) or getattr(param, "hidden", False):
                continue
            names = [param.name] if param.param_type_name == "argument" else param.opts + param.secondary_opts
            for name in names:
                assert f"`{name}`" in section, f"{entry.title}: {name} missing from its table"
    for path in paths:
        title = " ".join(("drivesim", *path))
        assert re.search(rf"^#+ {re.escape(title)}$", reference, re.MULTILINE), f"`{title}` has no section"


def test_reference_is_machine_independent(reference: str) -> None:
    assert str(REPO_ROOT) not in reference
    assert "\x1b" not in reference
    assert "`./configs/policy/bc.yaml`" in reference  # an absolute default, made relative to the repo root
    assert format_default_value(Path("/somewhere/repo/configs/x.yaml"), Path("/somewhere/repo")) == (
        "./configs/x.yaml"
    )
    assert format_default_value(Path("/somewhere/repo"), Path("/somewhere/repo")) == "."
    assert format_default_value(Path("/somewhere/repository/x"), Path("/somewhere/repo")) == (
        "/somewhere/repository/x"
    )


def test_module_cli_prints_and_checks(tmp_path: Path, reference: str) -> None:
    command = [sys.executable, "-m", "drivesim.cli.reference"]
    printed = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == reference  # same text in a fresh process (no hash-order or cwd dependence)
    stale = tmp_path / "cli.md"
    stale.write_text("old\n", encoding="utf-8")
    checked = subprocess.run([*command, "--check", str(stale)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "make docs" in checked.stderr
