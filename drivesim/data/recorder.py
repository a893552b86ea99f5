"""Data stage: turn a simulator's reset/step stream into the per-step arrays of one episode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from drivesim import spec
from drivesim.sim.interface import INFO_EGO_POSE, INFO_EXPERT_ACTION, INFO_TERMINATION

OBSERVATION_FIELDS = (spec.OBS_MEASUREMENTS, spec.OBS_ROUTE, spec.OBS_WAYPOINTS, spec.OBS_EVENTS)
OPTIONAL_OBSERVATION_FIELDS = (spec.OBS_BEV, spec.OBS_CAMERA)


class EpisodeRecorder:
    """Accumulates one episode following the step convention of ``drivesim.spec``.

    Row t holds o_t, the reward/events of arriving at o_t (zero at t=0) and a_t, the action applied after
    o_t. The last row's action is zeros (no action follows the final observation); its ``expert_action`` is
    the expert's control at the final observation.

    Example:
        >>> recorder = EpisodeRecorder()
        >>> obs, info = env.reset(seed=1)
        >>> recorder.reset(obs, info)
        >>> action = env.driver_action()
        >>> obs, reward, terminated, truncated, info = env.step(action)
        >>> recorder.step(action, obs, reward, terminated, truncated, info)
        >>> steps = recorder.finish()  # dict for drivesim.data.episode.write_episode
    """

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._rows: dict[str, list[np.ndarray]] = {}
        self._actions: list[np.ndarray] = []
        self.termination: str | None = None
        self.last_info: dict[str, Any] = {}
        self.truncated = False
        self.done = False

    @property
    def length(self) -> int:
        """Rows recorded so far."""
        return len(self._rows.get("reward", ()))

    def reset(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> None:
        """Start the episode with the first observation (from ``env.reset``)."""
        self._clear()
        self._add_row(obs, 0.0, info)

    def step(
        self,
        action: np.ndarray,
        obs: Mapping[str, np.ndarray],
        reward: float,
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
    ) -> None:
        """Record the action applied after the latest observation and the step's outcome."""
        if self.length == 0:
            raise RuntimeError("EpisodeRecorder.step() before reset()")
        if self.done:
            raise RuntimeError("EpisodeRecorder.step() after the episode ended")
        self._actions.append(np.asarray(action, dtype=np.float32).reshape(len(spec.ACTION_NAMES)))
        self._add_row(obs, reward, info)
        self.termination = info.get(INFO_TERMINATION)
        self._rows["is_terminal"][-1] = np.bool_(terminated)
        self.truncated = bool(truncated and not terminated)
        self.done = bool(terminated or truncated)

    def _add_row(self, obs: Mapping[str, np.ndarray], reward: float, info: Mapping[str, Any]) -> None:
        if INFO_EGO_POSE not in info or INFO_EXPERT_ACTION not in info:
            raise KeyError(f"simulator info must hold {INFO_EGO_POSE!r} and {INFO_EXPERT_ACTION!r}")
        row: dict[str, Any] = {name: obs[name] for name in OBSERVATION_FIELDS}
        row.update({name: obs[name] for name in OPTIONAL_OBSERVATION_FIELDS if obs.get(name) is not None})
        row["reward"] = np.float32(reward)
        row["ego_pose"] = np.asarray(info[INFO_EGO_POSE], dtype=np.float64)
        row["expert_action"] = np.asarray(info[INFO_EXPERT_ACTION], dtype=np.float32)
        row["is_first"] = np.bool_(self.length == 0)
        row["is_terminal"] = np.bool_(False)
        for name, value in row.items():
            self._rows.setdefault(name, []).append(value)
        self.last_info = dict(info)

    def finish(self) -> dict[str, np.ndarray]:
        """The recorded episode as arrays with a leading time axis (``is_last`` set on the final row)."""
        length = self.length
        if length == 0:
            raise RuntimeError("EpisodeRecorder.finish() with nothing recorded")
        steps = {name: np.stack(values) for name, values in self._rows.items()}
        actions = self._actions + [np.zeros(len(spec.ACTION_NAMES), dtype=np.float32)]
        steps["action"] = np.stack(actions)
        steps["is_last"] = np.zeros(length, dtype=bool)
        steps["is_last"][-1] = True
        return steps
