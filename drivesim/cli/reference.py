"""CLI stage: generate the Markdown reference of every `drivesim` command from the typer app itself.

    python -m drivesim.cli.reference --out docs/cli.md     # or: make docs
    python -m drivesim.cli.reference --check docs/cli.md   # exit status 1 when the file is stale

The output is deterministic: no terminal widths, no ANSI codes, commands in registration (``--help``) order,
and the repository root in defaults replaced by ``.`` so the file is the same on every machine.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import typer

REPO_ROOT = Path(__file__).resolve().parents[2]
REGENERATE_COMMAND = "python -m drivesim.cli.reference --out docs/cli.md"
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_HTML_OPENER = re.compile(r"<(?=[A-Za-z/!?])")


@dataclass(frozen=True)
class CommandEntry:
    """One command of the tree: its words after the program name, its click command and context."""

    path: tuple[str, ...]
    command: Any  # a click Command (typer vendors click, so the class is not importable by a public name)
    ctx: Any  # its click Context

    @property
    def title(self) -> str:
        return " ".join(("drivesim", *self.path))

    @property
    def is_group(self) -> bool:
        return hasattr(self.command, "commands")


def _make_context(command: Any, name: str, parent: Any | None) -> Any:
    settings = dict(getattr(command, "context_settings", None) or {})
    return command.context_class(command, info_name=name, parent=parent, **settings)


def iter_commands(app: typer.Typer | None = None) -> Iterator[CommandEntry]:
    """Walk the click command tree of ``app`` depth first, in ``--help`` order, skipping hidden commands.

    Args:
        app: The typer app (default: the `drivesim` app of ``drivesim.cli.main``).

    Yields:
        The root group first (``path == ()``), then every command and sub-command.
    """
    if app is None:
        from drivesim.cli.main import app
    root = typer.main.get_command(app)
    stack = [CommandEntry((), root, _make_context(root, "drivesim", None))]
    while stack:
        entry = stack.pop()
        yield entry
        if not entry.is_group:
            continue
        children = []
        for name in entry.command.list_commands(entry.ctx):
            child = entry.command.commands[name]
            if child.hidden:
                continue
            children.append(CommandEntry((*entry.path, name), child, _make_context(child, name, entry.ctx)))
        stack.extend(reversed(children))


def clean_help(text: str | None) -> str:
    """Help text as click shows it: dedented, cut at ``\\f``, without ``\\b`` no-rewrap markers."""
    if not text:
        return ""
    text = inspect.cleandoc(text).split("\f", 1)[0]
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def escape_markdown(text: str, in_table: bool = False) -> str:
    """Escape an HTML-opening ``<`` outside code spans (and ``|`` everywhere in tables); join lines in tables."""
    pieces = []
    position = 0
    for match in _CODE_SPAN.finditer(text):
        pieces.append(_escape_plain(text[position : match.start()]))
        pieces.append(match.group(0))
        position = match.end()
    pieces.append(_escape_plain(text[position:]))
    escaped = "".join(pieces)
    if in_table:
        # GFM splits table cells on every unescaped pipe, even inside code spans.
        escaped = escaped.replace("|", "\\|")
        paragraphs = [" ".join(part.split()) for part in re.split(r"\n\s*\n", escaped)]
        escaped = "<br>".join(part for part in paragraphs if part)
    return escaped


def _escape_plain(text: str) -> str:
    # Only "<" before a letter, "/", "!" or "?" can open an HTML tag ("ep_<ID>"); "x >= 1", "a -> b" stay as is.
    return _HTML_OPENER.sub("&lt;", text)


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def format_default_value(value: Any, repo_root: Path = REPO_ROOT) -> str:
    """A default as plain text, with the repository root (and the home folder) made machine independent."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (list, tuple)):
        return ", ".join(format_default_value(item, repo_root) for item in value)
    if callable(value):
        return "(dynamic)"
    text = str(value)
    for root in dict.fromkeys((str(repo_root), str(repo_root.resolve()))):
        if text == root:
            return "."
        text = text.replace(root + "/", "./")
    home = str(Path.home())
    if home not in ("", "/") and (text == home or text.startswith(home + "/")):
        text = "~" + text[len(home) :]
    return text


def _default_cell(param: Any, ctx: Any, repo_root: Path) -> str:
    if param.required:
        return "*required*"
    show_default = getattr(param, "show_default", True)
    if isinstance(show_default, str):
        return escape_markdown(show_default, in_table=True)
    value = param.get_default(ctx, call=False)
    if getattr(param, "is_flag", False):
        if param.secondary_opts:
            return _code(param.opts[0] if value else param.secondary_opts[0])
        return "on" if value else "off"
    if value is None:
        return ""
    if show_default is False:
        return "(not shown)"
    text = format_default_value(value, repo_root)
    return _code(text).replace("|", "\\|") if text else '`""`'


def _type_cell(param: Any, ctx: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    label = param.display_type(ctx) if hasattr(param, "display_type") else param.type.name
    label = label.removeprefix("<").removesuffix(">").removesuffix(" range")
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        label += f" ({low} <= x <= {high})"
    elif low is not None:
        label += f" (x >= {low})"
    elif high is not None:
        label += f" (x <= {high})"
    return escape_markdown(label, in_table=True)


def _name_cell(param: Any) -> str:
    if param.param_type_name == "argument":
        return _code(param.name)
    names = " / ".join(_code(opt) for opt in param.opts)
    if param.secondary_opts:
        names += " / " + " / ".join(_code(opt) for opt in param.secondary_opts)
    return names


def _params_table(title: str, params: Sequence[Any], ctx: Any, repo_root: Path) -> list[str]:
    if not params:
        return []
    lines = [f"**{title}**", "", "| Name | Type | Default | Description |", "|---|---|---|---|"]
    for param in params:
        cells = (
            _name_cell(param),
            _type_cell(param, ctx),
            _default_cell(param, ctx, repo_root),
            escape_markdown(clean_help(getattr(param, "help", None)), in_table=True),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def anchor(title: str) -> str:
    """The GitHub anchor of a heading made of plain words: ``drivesim bench wm`` -> ``drivesim-bench-wm``."""
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def _command_section(entry: CommandEntry, repo_root: Path) -> list[str]:
    command, ctx = entry.command, entry.ctx
    heading = "#" * min(2 + max(len(entry.path) - 1, 0), 4)
    lines = [f"{heading} {entry.title}", ""]
    if getattr(command, "deprecated", False):
        lines += ["*Deprecated.*", ""]
    help_text = clean_help(command.help)
    if help_text:
        lines += [escape_markdown(help_text), ""]
    usage = " ".join((ctx.command_path, *command.collect_usage_pieces(ctx)))
    lines += ["```text", usage, "```", ""]
    help_option = command.get_help_option(ctx)
    params = [
        param
        for param in command.get_params(ctx)
        if param is not help_option and not getattr(param, "hidden", False)
    ]
    lines += _params_table(
        "Arguments", [p for p in params if p.param_type_name == "argument"], ctx, repo_root
    )
    lines += _params_table("Options", [p for p in params if p.param_type_name != "argument"], ctx, repo_root)
    if entry.is_group:
        lines += ["**Commands**", ""]
        for name in command.list_commands(ctx):
            child = command.commands[name]
            if not child.hidden:
                title = f"{entry.title} {name}"
                summary = escape_markdown(child.get_short_help_str(limit=10_000), in_table=True)
                lines.append(f"- [`{name}`](#{anchor(title)}): {summary}")
        lines.append("")
    return lines


def render_reference(app: typer.Typer | None = None, repo_root: Path = REPO_ROOT) -> str:
    """The whole Markdown reference of ``app`` (default: the `drivesim` app)."""
    entries = list(iter_commands(app))
    lines = [
        "# drivesim CLI reference",
        "",
        "<!-- Generated from the typer app by drivesim/cli/reference.py: do not edit by hand. -->",
        "",
        f"Generated from the `drivesim` typer app; do not edit by hand. Regenerate with `make docs` "
        f"(`{REGENERATE_COMMAND}`); `tests/test_cli_reference.py` fails when this file is stale.",
        "",
        "Every command also accepts `--help`. Commands that take `--config FILE` also take trailing "
        "`key=value` config overrides. Paths in defaults are relative to the working directory, "
        "except those starting with `./`, which are relative to the repository root.",
        "",
        "## Contents",
        "",
    ]
    for entry in entries[1:]:
        indent = "  " * (len(entry.path) - 1)
        lines.append(f"{indent}- [`{entry.title}`](#{anchor(entry.title)})")
    lines.append("")
    for entry in entries:
        lines += _command_section(entry, repo_root)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point: print the reference, write it with ``--out`` or compare it with ``--check``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--out", type=Path, default=None, help="Write the reference to this file (default: stdout)."
    )
    target.add_argument(
        "--check", type=Path, default=None, help="Exit with status 1 if this file is not up to date."
    )
    args = parser.parse_args(argv)
    text = render_reference()
    if args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else None
        if current != text:
            print(f"{args.check} is stale: regenerate it with `make docs`.", file=sys.stderr)
            return 1
        return 0
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
