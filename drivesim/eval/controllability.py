"""Action controllability, simulator side: held-out states and what each action sequence does from them.

For each state: reset the embedded simulator (a random route from a held-out seed), let the clean expert drive
a random while and then ``context`` more steps (recorded as the world model's context: observations and the
expert's actions), snapshot; drive the expert from the snapshot for the horizon (its actions are the
``recorded`` sequence); then restore and drive each counterfactual sequence
(``drivesim.world_model.controllability.counterfactual_actions``). The ego poses after each step, in the
anchor's ego frame, are what the world model's rollouts are scored against.

Off-road does not end these episodes (a hard turn may leave the road for the whole horizon); a collision or
the time limit does, and the ego then keeps its last pose.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivesim import spec
from drivesim.sensors.config import SensorsConfig
from drivesim.sim.config import SimConfig
from drivesim.sim.env import EmbeddedSimEnv
from drivesim.sim.interface import INFO_EGO_POSE
from drivesim.world_model.controllability import (
    HORIZONS_S,
    SEQUENCES,
    counterfactual_actions,
    poses_in_anchor_frame,
)

logger = logging.getLogger(__name__)

WARMUP_S = (5.0, 30.0)  # the expert drives this long (uniform) before the context starts [s]
MAX_TRIES_PER_STATE = 5  # episodes that end before the state is reached are redrawn


@dataclass
class ControllabilityCase:
    """One held-out state and the simulator's outcome of every action sequence.

    Attributes:
        context: (T, ...) episode fields (``measurements``, ``action``, ``is_first`` and the images) of the
            context steps; the last row is the anchor, its action the first of each sequence.
        actions: sequence name -> (H, 3) actions applied from the anchor.
        poses: sequence name -> (H, 3) ego [x_m, y_m, heading_deg] after each step, in the anchor's ego frame.
        measurements: sequence name -> (H, M) the simulator's measurement vectors after each step.
        seed: episode seed.
    """

    context: dict[str, np.ndarray]
    actions: dict[str, np.ndarray]
    poses: dict[str, np.ndarray]
    measurements: dict[str, np.ndarray]
    seed: int


def controllability_sim_config(sim_config: SimConfig) -> SimConfig:
    """The data's simulator config with off-road terminations off (hard turns must run the whole horizon)."""
    config = sim_config.model_copy(deep=True)
    config.episode.off_road_limit_s = 0.0
    return config


def _drive(env: EmbeddedSimEnv, actions: np.ndarray | None, steps: int, anchor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply ``actions`` (or the expert's, when None) for ``steps``; (actions, poses, measurements) per step.

    After the episode ends (collision, time limit) the ego keeps its last pose and measurements.
    """
    applied, poses, measurements = [], [], []
    ended = False
    pose = measured = None
    for step in range(steps):
        action = np.asarray(env.expert_action() if actions is None else actions[step], dtype=np.float32)
        applied.append(action)
        if not ended:
            obs, _, terminated, truncated, info = env.step(action)
            ended = terminated or truncated
            pose = poses_in_anchor_frame(np.asarray(info[INFO_EGO_POSE], dtype=np.float64), anchor)
            measured = obs[spec.OBS_MEASUREMENTS]
        poses.append(pose)
        measurements.append(measured)
    return np.stack(applied), np.stack(poses), np.stack(measurements)


def _context(env: EmbeddedSimEnv, obs: dict, steps: int, image_keys: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict] | None:
    """Record ``steps`` rows from ``obs`` on, driven by the expert; the last row is the anchor (not stepped).

    Returns the rows as (steps, ...) arrays and the info of the step that reached the anchor; None if the
    episode ended first.
    """
    rows: list[dict[str, np.ndarray]] = []
    info: dict = {}  # of the step that reached the anchor
    for step in range(steps):
        row = {spec.OBS_MEASUREMENTS: obs[spec.OBS_MEASUREMENTS], "is_first": np.bool_(False)}
        row.update({key: obs[key] for key in image_keys})
        action = env.expert_action() if step < steps - 1 else np.zeros(3, dtype=np.float32)
        row["action"] = np.asarray(action, dtype=np.float32)
        rows.append(row)
        if step < steps - 1:
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                return None
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}, info


def simulate_cases(
    env: EmbeddedSimEnv,
    states: int,
    context_steps: int,
    horizon_steps: int,
    seed: int,
    image_keys: tuple[str, ...] = (spec.OBS_CAMERA, spec.OBS_BEV),
    warmup_s: tuple[float, float] = WARMUP_S,
) -> Iterator[ControllabilityCase]:
    """``states`` held-out cases from episode seeds ``seed``, ``seed + 1``, ... (see the module docstring).

    Args:
        env: embedded simulator with the sensors the world model reads (``controllability_sim_config``).
        states: cases to produce.
        context_steps: observed steps up to the anchor (>= 2).
        horizon_steps: steps each sequence is driven.
        seed: first episode seed (use seeds the training data did not).
        image_keys: image observations to record in the context.
        warmup_s: range of the expert's drive before the context [s].
    """
    if context_steps < 2:
        raise ValueError(f"context_steps must be >= 2, got {context_steps}")
    dt_s = env.sim_config.episode.dt_s
    episode_seed = seed
    for _ in range(states):
        for _ in range(MAX_TRIES_PER_STATE):
            rng = np.random.default_rng(episode_seed)
            obs, info = env.reset(seed=episode_seed, options={"driver": "clean"})
            episode_seed += 1
            warmup = int(rng.uniform(*warmup_s) / dt_s)
            ended = False
            for _ in range(warmup):
                obs, _, terminated, truncated, info = env.step(env.expert_action())
                if terminated or truncated:
                    ended = True
                    break
            recorded = None if ended else _context(env, obs, context_steps, image_keys)
            if recorded is not None:
                break
        else:
            raise RuntimeError(f"{MAX_TRIES_PER_STATE} episodes in a row ended before a state was reached (seed {seed})")
        context, info = recorded
        anchor = np.asarray(info[INFO_EGO_POSE], dtype=np.float64)
        snapshot = env.snapshot()
        expert_actions, poses, measurements = _drive(env, None, horizon_steps, anchor)
        sequences = counterfactual_actions(expert_actions)
        case_poses, case_measurements = {"recorded": poses}, {"recorded": measurements}
        for name in SEQUENCES[1:]:
            env.restore(snapshot)
            _, case_poses[name], case_measurements[name] = _drive(env, sequences[name], horizon_steps, anchor)
        context["action"][-1] = sequences["recorded"][0]
        yield ControllabilityCase(context, sequences, case_poses, case_measurements, episode_seed - 1)


def simulator_configs(data_dir: Path | None, image_size_px: int) -> tuple[SimConfig, SensorsConfig]:
    """The simulator and sensor configs of a dataset's collection (its first episode's ``meta.json``).

    Without a dataset: the defaults, with camera and BEV at the world model's ``image_size_px``.

    Raises:
        FileNotFoundError: no episodes in ``data_dir``.
        ValueError: the episodes do not record the collection config (not written by ``drivesim collect``).
    """
    if data_dir is None:
        sensors = SensorsConfig()
        sensors.camera.width_px = sensors.camera.height_px = image_size_px
        sensors.bev.size_px = image_size_px
        return SimConfig(), sensors
    from drivesim.data.episode import list_episodes, load_meta

    episodes = list_episodes(data_dir)
    if not episodes:
        raise FileNotFoundError(f"no episodes in {data_dir}")
    config = load_meta(episodes[0]).get("config") or {}
    if "sim" not in config or "sensors" not in config:
        raise ValueError(f"{episodes[0]}: meta.json records no collection config (sim, sensors); pass no --data")
    return SimConfig.model_validate(config["sim"]), SensorsConfig.model_validate(config["sensors"])


def run_controllability(
    ckpt: Path,
    data_dir: Path | None,
    out_dir: Path,
    states: int = 30,
    context_steps: int = 8,
    horizon_steps: int = 40,
    seed: int = 1_000_000,
    device: str = "cpu",
    sample: bool = False,
) -> dict[str, Any]:
    """Controllability of a world-model checkpoint on ``states`` held-out states; writes ``report.json``.

    The simulator runs with the dataset's configs (``simulator_configs``), off-road terminations off.
    """
    import torch

    from drivesim.utils import atomic_write_json
    from drivesim.world_model.controllability import (
        ControllabilityScores,
        WorldModelEgoPredictor,
        evaluate_controllability,
    )
    from drivesim.world_model.model import load_world_model
    from drivesim.world_model.train import check_dataset

    model, wm_config = load_world_model(ckpt, map_location=device)
    if data_dir is not None:
        check_dataset(wm_config, data_dir)
    sim_config, sensors_config = simulator_configs(data_dir, wm_config.encoder.image_size_px)
    sim_config = controllability_sim_config(sim_config)
    dt_s = sim_config.episode.dt_s
    predictor = WorldModelEgoPredictor(model.to(torch.device(device)), dt_s, sim_config.vehicle.rear_axle_to_centre_m, sample, seed)
    env = EmbeddedSimEnv(sim_config, sensors_config)
    try:
        cases = simulate_cases(env, states, context_steps, horizon_steps, seed, tuple(wm_config.encoder.image_keys))
        scores = ControllabilityScores(dt_s, tuple(s for s in HORIZONS_S if round(s / dt_s) <= horizon_steps))
        report = evaluate_controllability(predictor, cases, scores)
    finally:
        env.close()
    report.update({"checkpoint": str(ckpt), "data": str(data_dir) if data_dir else None, "context": context_steps,
                   "horizon": horizon_steps, "seed": seed, "rollout": "sample" if sample else "mode"})
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", report)
    logger.info("wrote %s", out_dir / "report.json")
    return report
