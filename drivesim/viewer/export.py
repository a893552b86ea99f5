"""Viewer stage: headless export of view frames to mp4 (imageio-ffmpeg, H.264) or gif, with a progress bar."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from drivesim.viewer.layout import even_size, resize_nearest

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".gif")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: file, frame count, frame size (width, height) and frame rate."""

    path: Path
    frames: int
    size: tuple[int, int]
    fps: float


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"640x480"`` -> (640, 480); None passes through.

    Raises:
        ValueError: not WIDTHxHEIGHT with positive integers.
    """
    if text is None:
        return None
    width, _, height = text.lower().partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise ValueError(f"size {text!r} must be WIDTHxHEIGHT, e.g. 640x480") from None
    if min(size) <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return size


class _Writer:
    """Appends frames to an mp4 (ffmpeg, yuv420p H.264) or a gif (Pillow, looping)."""

    def __init__(self, path: Path, fps: float) -> None:
        import imageio.v2 as imageio
        import imageio.v3 as iio

        self.path = path
        self._frames: list[np.ndarray] = []
        self._duration_ms = 1000.0 / fps
        if path.suffix.lower() == ".mp4":
            self._writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                              pixelformat="yuv420p", macro_block_size=1, quality=8)
            self._gif = None
        else:
            self._writer = None
            self._gif = iio.imopen(path, "w", plugin="pillow")

    def append(self, frame: np.ndarray) -> None:
        if self._writer is not None:
            self._writer.append_data(frame)
        else:
            self._frames.append(frame)  # Pillow writes an animated gif in one go

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        elif self._gif is not None:
            if self._frames:
                self._gif.write(np.stack(self._frames), duration=self._duration_ms, loop=0)
            self._gif.close()


def export_video(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float = 20.0,
    total: int | None = None,
    size: tuple[int, int] | None = None,
    description: str = "exporting",
    console: Console | None = None,
    show_progress: bool = True,
) -> ExportResult:
    """Write RGB frames to ``path`` (``.mp4`` or ``.gif``) with a rich progress bar.

    Args:
        frames: (H, W, 3) uint8 frames, all of one size.
        path: output file; the suffix picks the format.
        fps: frames per second.
        total: frame count for the progress bar (None: unknown).
        size: output (width, height) [px], nearest-neighbour scaled; default the frames' own size. mp4 sizes
            are rounded up to even numbers (H.264 with yuv420p needs them).
        description: progress bar label.
        console: where the progress bar goes (default stderr).
        show_progress: draw the progress bar.

    Returns:
        The written file, frame count, size and fps.

    Raises:
        ValueError: unsupported suffix, or no frames.
    """
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"export to {path}: use one of {', '.join(VIDEO_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = _Writer(path, fps)
    count, out_size = 0, size
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=console or Console(stderr=True), disable=not show_progress, transient=False,
    )
    try:
        with progress:
            task = progress.add_task(description, total=total, rate="")
            for frame in frames:
                if out_size is None:
                    out_size = (frame.shape[1], frame.shape[0])
                if path.suffix.lower() == ".mp4":
                    out_size = even_size(*out_size)
                if (frame.shape[1], frame.shape[0]) != out_size:
                    frame = resize_nearest(frame, out_size)
                writer.append(np.ascontiguousarray(frame, dtype=np.uint8))
                count += 1
                elapsed = progress.tasks[task].elapsed or 0.0
                progress.update(task, advance=1, rate=f"{count / elapsed:.1f} fps" if elapsed > 0 else "")
    finally:
        writer.close()
    if count == 0:
        path.unlink(missing_ok=True)
        raise ValueError(f"nothing to export to {path}: no frames")
    assert out_size is not None
    logger.info("wrote %s (%d frames, %dx%d, %.1f fps)", path, count, *out_size, fps)
    return ExportResult(path, count, out_size, fps)
