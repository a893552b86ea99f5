"""Viewer stage: headless screenshots of the three viewer modes (for the README).

Usage: ``python -m drivesim.viewer.screenshots --out docs/images [--wm CKPT | --fit-steps N] [--data DATA]``

Without ``--data`` two episodes are recorded first on the embedded simulator with the expert (a clean and a
careless driver) into a temporary folder. Without ``--wm`` the dream views use a randomly initialised
``debug`` world model, or with ``--fit-steps N`` a ``debug`` world model trained for N steps on those
episodes (``drivesim.world_model.train``; minutes on a CPU); the frames name the model they show.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless: no window is ever opened

logger = logging.getLogger(__name__)

REPLAY_FILE = "viewer_replay.png"
DREAM_FILE = "viewer_dream.png"
DRIVE_FILE = "viewer_drive_dream.png"


def record_episodes(out_dir: Path, steps: int = 300, seed: int = 7) -> list[Path]:
    """Record a clean and a careless expert episode (camera + BEV, 64x64) on the embedded simulator."""
    from drivesim.data.episode import write_episode
    from drivesim.data.recorder import EpisodeRecorder
    from drivesim.sensors.config import SensorsConfig
    from drivesim.sim.config import SimConfig
    from drivesim.sim.env import EmbeddedSimEnv

    env = EmbeddedSimEnv(SimConfig(), SensorsConfig())
    paths = []
    try:
        for index, driver in enumerate(("clean", "careless")):
            recorder = EpisodeRecorder()
            obs, info = env.reset(seed=seed + index, options={"driver": driver})
            recorder.reset(obs, info)
            for _ in range(steps):
                action = env.driver_action()
                obs, reward, terminated, truncated, info = env.step(action)
                recorder.step(action, obs, reward, terminated, truncated, info)
                if recorder.done:
                    break
            metadata = {key: value for key, value in env.episode_metadata().items()
                        if key in ("simulator", "map_name", "seed", "driver", "dt_s", "route_length_m")}
            metadata["termination"] = recorder.termination
            paths.append(write_episode(out_dir, index, recorder.finish(), metadata))
            logger.info("recorded %s (%d steps, %s)", paths[-1].name, recorder.length, recorder.termination)
    finally:
        env.close()
    return paths


def fit_debug_model(data: Path, out: Path, steps: int, image_size_px: int = 64) -> Path:
    """Train the ``debug`` world-model preset on ``data`` for ``steps`` steps (CPU) and return ``last.ckpt``."""
    from drivesim.config import load_config
    from drivesim.viewer.dream import DEBUG_PRESET
    from drivesim.world_model.config import WorldModelConfig
    from drivesim.world_model.train import train_world_model

    overrides = [f"encoder.image_size_px={image_size_px}", f"train.max_steps={steps}", "train.val_fraction=0.0",
                 f"train.val_every_steps={steps}", "train.image_log_every_steps=0", "train.window_steps=32"]
    config = load_config(WorldModelConfig, DEBUG_PRESET, overrides)
    train_world_model(config, data, out, accelerator="cpu", progress_bar=False)
    return out / "checkpoints" / "last.ckpt"  # Lightning's ModelCheckpoint(save_last=True) of the run


def _interesting_step(episode: object, fallback: int) -> int:
    """A step with an event (collision first) to show highlighted badges, else ``fallback``."""
    for name in ("collision", "off_road", "lane_invasion"):
        steps = episode.event_steps(name)  # type: ignore[attr-defined]
        if steps.size:
            return int(steps[0])
    return fallback


def take_screenshots(data: Path, out: Path, checkpoint: str | Path | None = None, seed: int = 0,
                     model_label: str | None = None) -> list[Path]:
    """Render one frame of each mode from the episodes in ``data`` and save PNGs into ``out``.

    Args:
        data: episodes to show (the last one in the replay view, the first one in the dream views).
        out: output folder.
        checkpoint: world model of the dream views; None: a randomly initialised ``debug`` one.
        seed: seed of the model initialisation and the dreams.
        model_label: how the frames name the model (default from ``load_model``).
    """
    import imageio.v3 as iio

    from drivesim.dream.episode import DreamDriver, OpenLoopDreamer
    from drivesim.viewer.dream import AgentControl, load_model
    from drivesim.viewer.drive_view import DriveDreamView
    from drivesim.viewer.replay import EpisodeLibrary
    from drivesim.viewer.views import DreamCompareView, ReplayView

    out.mkdir(parents=True, exist_ok=True)
    library = EpisodeLibrary(data)
    position = len(library) - 1  # the careless episode, when recorded here
    episode = library[position]
    step = _interesting_step(episode, episode.length // 2)
    written = []

    replay = ReplayView(library, position, playing=False)
    replay.player.seek(step)
    written.append(out / REPLAY_FILE)
    iio.imwrite(written[-1], replay.render())

    model, label = load_model(checkpoint, seed)
    label = model_label or label
    context, horizon = 8, 40
    dream = DreamCompareView(library, OpenLoopDreamer(model, context, horizon, seed), 0, model_label=label,
                             playing=False)
    anchor = min(30, library[0].length - 2)
    dream.player.seek(anchor)
    dream.reanchor(anchor)
    dream.player.seek(min(anchor + 15, library[0].length - 1))
    written.append(out / DREAM_FILE)
    iio.imwrite(written[-1], dream.render())

    driver = DreamDriver(model, library[0], anchor, context, seed)
    drive = DriveDreamView(driver, AgentControl("constant:0.6,0.1", driver, seed), model_label=label)
    for _ in range(30):
        driver.step(drive.next_action(library[0].dt_s))
    written.append(out / DRIVE_FILE)
    iio.imwrite(written[-1], drive.render())
    for path in written:
        logger.info("wrote %s", path)
    return written


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (``python -m drivesim.viewer.screenshots``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="Output folder of the PNGs.")
    parser.add_argument("--wm", default=None, help="Trained world-model checkpoint (default: untrained debug model).")
    parser.add_argument("--data", type=Path, default=None, help="Episodes to show (default: record two now).")
    parser.add_argument("--fit-steps", type=int, default=0,
                        help="Without --wm: train the debug world model this many steps on the episodes first.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the models and the dream.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    np.random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="drivesim-screens-") as temp:
        data = args.data
        if data is None:
            data = Path(temp) / "episodes"
            record_episodes(data)
        checkpoint, label = args.wm, None
        if checkpoint is None and args.fit_steps > 0:
            checkpoint = fit_debug_model(data, Path(temp) / "world_model", args.fit_steps)
            label = f"debug world model, {args.fit_steps} steps"
        take_screenshots(data, args.out, checkpoint, args.seed, label)


if __name__ == "__main__":
    main()
