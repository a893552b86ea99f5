"""Viewer commands: `drivesim replay` (episodes, dreams beside reality) and `drivesim drive-dream`.

pygame, torch and the world model are imported inside the commands so that `drivesim --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from drivesim.cli.options import console, fail

DEBUG_MODEL = "debug"
ExportOption = typer.Option(
    None, "--export", "-e", help="Render headless to this .mp4 or .gif (replay: the selected episode) instead of a window."
)
FpsOption = typer.Option(None, "--fps", help="Export frame rate (default: the episode's, 1/dt_s).")
SizeOption = typer.Option(None, "--size", help="Export frame size WIDTHxHEIGHT (default: the view's own size).")
PanelOption = typer.Option(None, "--panel", help="Side of each sensor panel in pixels (default 256, 192 beside a dream); small frames are upscaled crisply.")
ScreenshotOption = typer.Option(Path("screenshots"), "--screenshots", help="Folder of `s` screenshots.")


def _headless_if_exporting(export: Path | None) -> None:
    """Use SDL's dummy drivers for exports (no window, no audio device); must run before pygame starts."""
    if export is not None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def _model(checkpoint: str, seed: int) -> tuple[Any, str]:
    from drivesim.viewer.dream import load_model

    if checkpoint == DEBUG_MODEL:
        return load_model(None, seed)
    if not Path(checkpoint).is_file():
        fail(f"no world-model checkpoint at {checkpoint} (use `{DEBUG_MODEL}` for an untrained debug model)", 2)
    try:
        return load_model(checkpoint, seed)
    except (RuntimeError, KeyError, ValueError) as error:  # wrong file, or saved by another model version
        fail(f"cannot load the world model {checkpoint}: {escape(str(error))}", 2)


def _show_or_export(view: Any, export: Path | None, fps: float | None, size: str | None, max_frames: int | None,
                    default_fps: float, title: str, screenshots: Path) -> None:
    """Open the window on ``view``, or render its frames headless into ``export``."""
    if export is None:
        from drivesim.viewer.app import ViewerApp

        ViewerApp(view, screenshots).run(title)
        return
    from drivesim.viewer.export import export_video, parse_size

    try:
        out_size = parse_size(size)
        frames, total = view.export_frames(max_frames)
        result = export_video(frames, export, fps or default_fps, total, out_size, description=f"export {export.name}")
    except ValueError as error:
        fail(escape(str(error)), 2)
    console.print(f"wrote {result.path} ({result.frames} frames, {result.size[0]}x{result.size[1]}, {result.fps:g} fps)")


def _list_episodes(library: Any) -> None:
    """Print the library's episodes with their event counts (to stdout)."""
    from rich.console import Console
    from rich.table import Table

    from drivesim.viewer.replay import EVENT_KINDS

    table = Table(title=f"{len(library)} episodes in {library.data}" + (
        f" with {library.event_filter}" if library.event_filter else ""))
    for column in ("episode", "steps", "driver", "termination", *EVENT_KINDS):
        table.add_column(column, justify="right" if column not in ("episode", "driver", "termination") else "left")
    for position in range(len(library)):
        episode = library[position]
        counts = [str(len(episode.event_steps(name))) for name in EVENT_KINDS]
        table.add_row(episode.name, str(episode.length), str(episode.meta.get("driver", "")),
                      str(episode.meta.get("termination", "")), *counts)
    Console().print(table)


def replay_command(
    data: Path = typer.Argument(..., help="Dataset folder, evaluation run folder or one episode folder."),
    episode: int | None = typer.Option(None, "--episode", help="Start at episode ID (ep_<ID>)."),
    event_filter: str | None = typer.Option(
        None, "--filter", help="Only episodes with this event: collision, off_road, lane_invasion."
    ),
    list_only: bool = typer.Option(False, "--list", help="Print the (filtered) episodes with event counts and exit."),
    wm: str | None = typer.Option(
        None, "--wm", help=f"World-model checkpoint: show its open-loop dream beside reality (`{DEBUG_MODEL}`: untrained)."
    ),
    context: int = typer.Option(8, help="Frames the dream observes up to its anchor."),
    horizon: int = typer.Option(40, help="Frames the dream predicts after its anchor."),
    seed: int = typer.Option(0, help="Seed of the dream's latent sampling."),
    panel: int | None = PanelOption,
    export: Path | None = ExportOption,
    fps: float | None = FpsOption,
    size: str | None = SizeOption,
    max_frames: int | None = typer.Option(None, help="Export at most this many frames."),
    screenshots: Path = ScreenshotOption,
) -> None:
    """Replay recorded episodes in a pygame window (camera, BEV, HUD), optionally beside a world model's dream.

    Keys: space play/pause, left/right step, up/down speed, PgUp/PgDn episode, Home/End, c/o/l next
    collision/off-road/lane invasion, a re-anchor the dream, s screenshot, h help, Esc quit.
    """
    _headless_if_exporting(export)
    from drivesim.viewer.replay import EpisodeLibrary

    try:
        library = EpisodeLibrary(data, event_filter)
        position = library.position(episode) if episode is not None else 0
    except (FileNotFoundError, KeyError, ValueError) as error:
        fail(escape(str(error).strip("'\"")), 2)
    if list_only:
        _list_episodes(library)
        return
    from drivesim.viewer.views import DreamCompareView, ReplayView

    if wm is None:
        view: Any = ReplayView(library, position, panel or 256, playing=export is None)
    else:
        from drivesim.dream.episode import OpenLoopDreamer

        model, label = _model(wm, seed)
        view = DreamCompareView(library, OpenLoopDreamer(model, context, horizon, seed), position, panel or 192,
                                label, playing=export is None)
        try:
            view.render()  # fails early when the episodes lack an input of the model
        except ValueError as error:
            fail(escape(str(error)), 2)
    _show_or_export(view, export, fps, size, max_frames, 1.0 / library[position].dt_s, f"drivesim replay {data}",
                    screenshots)


def drive_dream_command(
    checkpoint: str = typer.Argument(..., help=f"World-model checkpoint (`{DEBUG_MODEL}`: an untrained debug model)."),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset whose episode gives the real context window."),
    episode: int | None = typer.Option(None, "--episode", help="Episode ID of the context (default: the first)."),
    start: int | None = typer.Option(None, help="Last real frame observed (default: context - 1)."),
    context: int = typer.Option(8, help="Real frames observed before the dream starts."),
    agent: str | None = typer.Option(
        None, "--agent", help="Let an agent drive (constant, random, policy:PATH, ...); default: the keyboard."
    ),
    seed: int = typer.Option(0, help="Seed of latent sampling and of the agent."),
    panel: int | None = PanelOption,
    export: Path | None = ExportOption,
    fps: float | None = FpsOption,
    size: str | None = SizeOption,
    steps: int = typer.Option(200, help="Export this many frames (the agent drives, else the recorded controls)."),
    screenshots: Path = ScreenshotOption,
) -> None:
    """Drive inside the learned simulator (W/S throttle/brake, A/D steer), or watch an agent drive in the dream.

    The world model first observes a real context window of a recorded episode, then only its prior runs.
    The HUD shows the predicted reward components. Keys: space pause, r restart, p screenshot, h help, Esc quit.
    """
    _headless_if_exporting(export)
    from drivesim.dream.episode import DreamDriver
    from drivesim.viewer.dream import AgentControl
    from drivesim.viewer.drive_view import DriveDreamView
    from drivesim.viewer.replay import EpisodeLibrary

    try:
        library = EpisodeLibrary(data)
        chosen = library[library.position(episode) if episode is not None else 0]
    except (FileNotFoundError, KeyError) as error:
        fail(escape(str(error).strip("'\"")), 2)
    model, label = _model(checkpoint, seed)
    try:
        driver = DreamDriver(model, chosen, start, context, seed)
        control = AgentControl(agent, driver, seed) if agent else None
    except ValueError as error:
        fail(escape(str(error)), 2)
    view = DriveDreamView(driver, control, panel or 256, label)
    _show_or_export(view, export, fps, size, steps, 1.0 / chosen.dt_s, f"drivesim drive-dream {checkpoint}", screenshots)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the viewer commands to the `drivesim` app."""
    app.command("replay")(replay_command)
    app.command("drive-dream")(drive_dream_command)
