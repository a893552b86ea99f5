"""World model stage: action controllability: does the imagined ego do what the actions say?

From one state, K action sequences (hard left, hard right, full brake, full throttle and the recorded ones)
are driven in the simulator (restored to that state each time) and in the world model (posterior over the
same context observations, then prior rollouts under the same actions). Errors of the model's ego position
and heading at 1 s and 2 s are compared with the **ignore-the-actions baseline**: the model's rollout under
the recorded actions, scored against the simulator's outcome of every sequence. A model that ignores its
actions scores exactly the baseline; one that follows them scores less.

Ego motion readout: the world model predicts no pose. Its measurement head reconstructs ``speed_mps`` and
``yaw_rate_dps`` for every imagined step (symlog regression, trained with the rest); those are integrated with
the embedded simulator's own kinematics (``drivesim.sim.vehicle.step_vehicle``: the rear axle moves by the
new speed along the previous heading, then the heading turns by the new yaw rate; the pose is reported at the
box centre, ``rear_axle_to_centre_m`` ahead of the axle). Fed the simulator's own measurements, this readout
reproduces its trajectory (tests/world_model/test_controllability.py). Poses are in the anchor's ego frame:
x forward, y right [m], heading [deg] positive to the right.

No simulator here (no carla): the simulator side is ``drivesim.eval.controllability``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from drivesim.world_model.model import WorldModel
from drivesim.world_model.rssm import LatentState

SEQUENCES = ("recorded", "hard_left", "hard_right", "full_brake", "full_throttle")
COUNTERFACTUALS = SEQUENCES[1:]
HORIZONS_S = (1.0, 2.0)
DEFAULT_REAR_AXLE_TO_CENTRE_M = 1.45  # drivesim.sim.config.VehicleConfig's default

# A predictor maps one context (batch of 1, T steps, dataset fields) and K action sequences (K, H, 3) to the
# ego poses (K, H, 3) [x_m, y_m, heading_deg] after each of the H steps, in the anchor's ego frame.
EgoPredictor = Callable[[dict[str, Tensor], np.ndarray], np.ndarray]


def counterfactual_actions(recorded: np.ndarray) -> dict[str, np.ndarray]:
    """The action sequences (H, 3) [throttle, steer, brake] from the recorded ones: one control changed each.

    ``hard_left`` / ``hard_right``: steer -1 / +1 with the recorded throttle and brake; ``full_brake``:
    brake 1, throttle 0; ``full_throttle``: throttle 1, brake 0 (both with the recorded steer).
    """
    recorded = np.asarray(recorded, dtype=np.float32)
    sequences = {name: recorded.copy() for name in SEQUENCES}
    sequences["hard_left"][:, 1] = -1.0
    sequences["hard_right"][:, 1] = 1.0
    sequences["full_brake"][:, 0], sequences["full_brake"][:, 2] = 0.0, 1.0
    sequences["full_throttle"][:, 0], sequences["full_throttle"][:, 2] = 1.0, 0.0
    return sequences


def integrate_ego_motion(
    speed_mps: np.ndarray, yaw_rate_dps: np.ndarray, dt_s: float, rear_axle_to_centre_m: float = DEFAULT_REAR_AXLE_TO_CENTRE_M
) -> np.ndarray:
    """Ego poses (..., H, 3) [x_m, y_m, heading_deg] after each step, from per-step speed and yaw rate (..., H).

    Step j (1-based) moves the rear axle by ``speed[j] * dt`` along the heading after step j - 1, then turns
    the heading by ``yaw_rate[j] * dt``, as the embedded simulator's bicycle model; the anchor pose is the
    origin, heading 0.
    """
    speed = np.asarray(speed_mps, dtype=np.float64)
    heading = np.cumsum(np.radians(np.asarray(yaw_rate_dps, dtype=np.float64)) * dt_s, axis=-1)
    before = np.concatenate([np.zeros_like(heading[..., :1]), heading[..., :-1]], axis=-1)
    rear_x = -rear_axle_to_centre_m + np.cumsum(speed * dt_s * np.cos(before), axis=-1)
    rear_y = np.cumsum(speed * dt_s * np.sin(before), axis=-1)
    x = rear_x + rear_axle_to_centre_m * np.cos(heading)
    y = rear_y + rear_axle_to_centre_m * np.sin(heading)
    return np.stack([x, y, np.degrees(heading)], axis=-1)


def poses_in_anchor_frame(world_poses: np.ndarray, anchor_pose: np.ndarray) -> np.ndarray:
    """World poses (..., >=4) [x, y, z, yaw_deg] (``info["ego_pose"]``) -> (..., 3) in the anchor's ego frame."""
    yaw = np.radians(float(anchor_pose[3]))
    cos, sin = np.cos(yaw), np.sin(yaw)
    dx, dy = world_poses[..., 0] - anchor_pose[0], world_poses[..., 1] - anchor_pose[1]
    heading = np.remainder(world_poses[..., 3] - anchor_pose[3] + 180.0, 360.0) - 180.0
    return np.stack([dx * cos + dy * sin, -dx * sin + dy * cos, heading], axis=-1)


class WorldModelEgoPredictor:
    """The world model as an ``EgoPredictor``: posterior mode over the context, then prior rollouts.

    Args:
        model: world model whose encoder reconstructs ``speed_mps`` and ``yaw_rate_dps``.
        dt_s: step [s] of the data.
        rear_axle_to_centre_m: the ego's rear-axle offset [m] (the data's ``sim.vehicle``).
        sample: sample the prior latents (False: their mode, as the open-loop ``mode`` rollouts).
        seed: seed of the sampled rollouts.

    Raises:
        ValueError: the model does not reconstruct speed and yaw rate (nothing to read the ego motion from).
    """

    def __init__(
        self,
        model: WorldModel,
        dt_s: float = 0.05,
        rear_axle_to_centre_m: float = DEFAULT_REAR_AXLE_TO_CENTRE_M,
        sample: bool = False,
        seed: int = 0,
    ) -> None:
        names = list(model.config.encoder.measurement_names)
        missing = [name for name in ("speed_mps", "yaw_rate_dps") if name not in names]
        if missing:
            raise ValueError(
                f"the world model does not reconstruct {missing} (encoder.measurement_names={names}): "
                "its ego motion cannot be read out"
            )
        self.model = model.eval()
        self.speed_index, self.yaw_index = names.index("speed_mps"), names.index("yaw_rate_dps")
        self.dt_s = dt_s
        self.rear_axle_to_centre_m = rear_axle_to_centre_m
        self.sample = sample
        self.seed = seed

    @torch.no_grad()
    def __call__(self, context: dict[str, Tensor], actions: np.ndarray) -> np.ndarray:
        model = self.model
        device = next(model.parameters()).device
        context = {key: value.to(device) for key, value in context.items()}
        posterior, _, _ = model.observe(context, sample=False)
        count, horizon = actions.shape[:2]
        start = LatentState(
            posterior.deter[:, -1].expand(count, -1).contiguous(),
            posterior.stoch[:, -1].expand(count, *posterior.stoch.shape[2:]).contiguous(),
        )
        generator = torch.Generator(device=device).manual_seed(self.seed)
        controls = torch.as_tensor(actions, dtype=torch.float32, device=device)
        imagination = model.imagine(start, controls, horizon, generator=generator, sample=self.sample)
        measurements = imagination.measurements.float().cpu().numpy()  # (K, H, M)
        return integrate_ego_motion(
            measurements[..., self.speed_index], measurements[..., self.yaw_index], self.dt_s, self.rear_axle_to_centre_m
        )


def _heading_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.remainder(a - b + 180.0, 360.0) - 180.0))


class ControllabilityScores:
    """Accumulates position and heading errors per action sequence and horizon against the baseline.

    Args:
        dt_s: step [s].
        horizons_s: horizons reported [s].
    """

    def __init__(self, dt_s: float = 0.05, horizons_s: tuple[float, ...] = HORIZONS_S) -> None:
        self.dt_s = dt_s
        self.horizons = {f"{seconds:g}": int(round(seconds / dt_s)) for seconds in horizons_s}
        self.sums: dict[tuple[str, str, str], float] = {}
        self.states = 0

    def update(self, simulated: dict[str, np.ndarray], predicted: dict[str, np.ndarray]) -> None:
        """One state: per sequence name, the simulator's and the predictor's poses (H, 3) in the anchor frame."""
        baseline = predicted["recorded"]
        for name in SEQUENCES:
            truth, guess = simulated[name], predicted[name]
            for label, steps in self.horizons.items():
                if steps > len(truth):
                    raise ValueError(f"horizon {label} s needs {steps} steps, the sequences hold {len(truth)}")
                row = steps - 1
                values = {
                    "position_error_m": float(np.linalg.norm(guess[row, :2] - truth[row, :2])),
                    "baseline_position_error_m": float(np.linalg.norm(baseline[row, :2] - truth[row, :2])),
                    "heading_error_deg": _heading_error_deg(guess[row, 2], truth[row, 2]),
                    "baseline_heading_error_deg": _heading_error_deg(baseline[row, 2], truth[row, 2]),
                    "action_effect_m": float(np.linalg.norm(truth[row, :2] - simulated["recorded"][row, :2])),
                }
                for key, value in values.items():
                    self.sums[(name, label, key)] = self.sums.get((name, label, key), 0.0) + value
        self.states += 1

    def report(self) -> dict[str, Any]:
        """Means per sequence and horizon; ``counterfactual``: over the four changed sequences, with the ratio
        of the model's position error to the baseline's (``position_error_ratio``; 1 = ignores the actions)."""
        if self.states == 0:
            raise ValueError("no controllability states evaluated")
        per_sequence: dict[str, dict[str, dict[str, float]]] = {name: {} for name in SEQUENCES}
        for (name, label, key), total in self.sums.items():
            per_sequence[name].setdefault(label, {})[key] = total / self.states
        counterfactual: dict[str, dict[str, float]] = {}
        for label in self.horizons:
            entry = {
                key: float(np.mean([per_sequence[name][label][key] for name in COUNTERFACTUALS]))
                for key in per_sequence[COUNTERFACTUALS[0]][label]
            }
            baseline = entry["baseline_position_error_m"]
            entry["position_error_ratio"] = entry["position_error_m"] / baseline if baseline > 0 else float("nan")
            counterfactual[label] = entry
        return {"states": self.states, "dt_s": self.dt_s, "sequences": per_sequence, "counterfactual": counterfactual}


def evaluate_controllability(
    predictor: EgoPredictor, cases: Any, scores: ControllabilityScores | None = None
) -> dict[str, Any]:
    """Score ``predictor`` on cases with ``context`` (T, ...) arrays, ``actions`` and simulated ``poses`` per sequence.

    ``cases`` yields objects with those three attributes (``drivesim.eval.controllability.ControllabilityCase``).
    """
    scores = scores or ControllabilityScores()
    for case in cases:
        context = {key: torch.from_numpy(np.ascontiguousarray(value))[None] for key, value in case.context.items()}
        actions = np.stack([case.actions[name] for name in SEQUENCES])
        predicted = dict(zip(SEQUENCES, predictor(context, actions), strict=True))
        scores.update(case.poses, predicted)
    return scores.report()


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Human-readable lines: per horizon the counterfactual means, then per sequence."""
    lines = [f"action controllability on {report['states']} states (ego pose after each sequence vs the simulator)"]
    for label, entry in report["counterfactual"].items():
        lines.append(
            f"at {label} s, changed actions: position error {entry['position_error_m']:.2f} m vs ignore-actions "
            f"{entry['baseline_position_error_m']:.2f} m (ratio {entry['position_error_ratio']:.2f}); heading "
            f"{entry['heading_error_deg']:.1f} vs {entry['baseline_heading_error_deg']:.1f} deg; the actions move the "
            f"real ego {entry['action_effect_m']:.2f} m"
        )
    for name, horizons in report["sequences"].items():
        parts = [
            f"{label} s {values['position_error_m']:.2f} m / {values['heading_error_deg']:.1f} deg "
            f"(baseline {values['baseline_position_error_m']:.2f} m)"
            for label, values in horizons.items()
        ]
        lines.append(f"  {name}: " + ", ".join(parts))
    return lines
