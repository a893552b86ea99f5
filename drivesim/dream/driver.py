"""Dream stage: driving in the world model's latent space, batched (the engine of DreamSim, RL and dream evaluation).

``LatentDriver`` wraps a trained ``WorldModel``: it filters a real context window with the posterior, then
steps the prior with controls, predicting reward components, speed, measurements, termination and (optionally)
frames. The world model does not predict the route, so the route points are carried from the context and
moved into each new ego frame by dead reckoning with the predicted speed and yaw rate (a good approximation
over imagination horizons; points are not re-sampled along the road).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from drivesim import spec
from drivesim.dream.config import ControllerConfig
from drivesim.dream.controller import TorchWaypointController
from drivesim.world_model.model import WorldModel
from drivesim.world_model.rssm import LatentState

SPEED = spec.MEASUREMENT_NAMES.index("speed_mps")
YAW_RATE = spec.MEASUREMENT_NAMES.index("yaw_rate_dps")
CONTROL_SLOTS = [spec.MEASUREMENT_NAMES.index(name) for name in ("throttle", "steer", "brake")]
ROUTE_COMPLETION = spec.EVENT_NAMES.index("route_completion")


@dataclass
class DriveState:
    """Batched state of N imagined drives.

    Attributes:
        latent: deter (N, D), stoch (N, G, C).
        route: (N, R, 2) route points in the current ego frame [m].
        expert_waypoints: (N, K, 2) the context's last expert waypoints (carried unchanged; not predicted).
        speed_mps: (N,) current speed (predicted after the first step).
        integral: (N,) PID integral of the waypoint controller.
        pose: (N, 3) dead-reckoned x, y [m], yaw [deg] in the context's world frame.
        route_completion: (N,) the context's last route completion (carried).
    """

    latent: LatentState
    route: Tensor
    expert_waypoints: Tensor
    speed_mps: Tensor
    integral: Tensor
    pose: Tensor
    route_completion: Tensor

    def assign(self, rows: Tensor, other: DriveState) -> DriveState:
        """A copy with the rows ``rows`` replaced by ``other``'s."""

        def put(target: Tensor, source: Tensor) -> Tensor:
            result = target.clone()
            result[rows] = source.to(result.dtype)
            return result

        return DriveState(
            LatentState(
                put(self.latent.deter, other.latent.deter), put(self.latent.stoch, other.latent.stoch)
            ),
            *(
                put(getattr(self, n), getattr(other, n))
                for n in ("route", "expert_waypoints", "speed_mps", "integral", "pose", "route_completion")
            ),
        )


@dataclass
class StepPrediction:
    """What the heads say about N states.

    Attributes:
        features: (N, F) [h, z].
        components: (N,) each: ``progress`` [m], ``speed`` [m/s], ``collision``, ``off_road``, ``cont``.
        reward: (N,) weighted components.
        measurements: (N, M) the spec's measurement vector (speed from the speed head).
        events: (N, E) the spec's events (event probabilities, predicted progress, carried completion).
        images: ``camera`` (N, S, S, 3) and/or ``bev`` (N, C, S, S) in [0, 1], when decoded.
    """

    features: Tensor
    components: dict[str, Tensor]
    reward: Tensor
    measurements: Tensor
    events: Tensor
    images: dict[str, Tensor] | None


def advance_ego_frame(
    points: Tensor, speed_mps: Tensor, yaw_rate_dps: Tensor, dt_s: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Move ego-frame points (N, P, 2) into the ego frame after driving one step.

    The ego advances ``speed * dt`` along the chord of an arc turning by ``yaw_rate * dt`` (positive = right,
    toward +y). Returns the moved points, the displacement (N, 2) in the old ego frame and the yaw change (N,) [rad].
    """
    turn = torch.deg2rad(yaw_rate_dps.float()) * dt_s
    step = speed_mps.float() * dt_s
    shift = torch.stack([step * torch.cos(turn / 2), step * torch.sin(turn / 2)], -1)
    relative = points - shift.unsqueeze(1)
    cos, sin = torch.cos(turn).unsqueeze(1), torch.sin(turn).unsqueeze(1)
    moved = torch.stack(
        [cos * relative[..., 0] + sin * relative[..., 1], -sin * relative[..., 0] + cos * relative[..., 1]],
        -1,
    )
    return moved, shift, turn


class LatentDriver:
    """Batched driving inside a world model.

    Args:
        world_model: a trained (or, for tests, random) ``WorldModel``; it is used as is (eval mode, no grads).
        controller: the shared controller's vehicle and step.
        waypoint_dt_s: time between policy waypoints [s].
        reward_weights: reward component weights; None uses the world model's.
    """

    def __init__(
        self,
        world_model: WorldModel,
        controller: ControllerConfig,
        waypoint_dt_s: float = 0.5,
        reward_weights: dict[str, float] | None = None,
    ) -> None:
        self.world_model = world_model
        self.dt_s = controller.dt_s
        self.vehicle = controller.vehicle
        self.controller = TorchWaypointController(controller.vehicle, waypoint_dt_s)
        self.reward_weights = reward_weights
        self.measurement_index = world_model.measurement_index
        self.image_keys = world_model.image_keys

    # ------------------------------------------------------------------------------------ predictions
    def predict(
        self, latent: LatentState, control: Tensor | None = None, decode_images: bool = False
    ) -> StepPrediction:
        """Head predictions for states (N, ...); ``control`` (N, 3) fills the measurement's control slots."""
        features = self.world_model.features(latent)
        out = self.world_model.predict(features, decode_images)
        components = out["components"]
        batch = features.shape[0]
        measurements = features.new_zeros(batch, len(spec.MEASUREMENT_NAMES), dtype=torch.float32)
        if out["measurements"] is not None:
            measurements[:, self.measurement_index] = out["measurements"].float()
        measurements[:, SPEED] = components["speed"].float()
        if control is not None:
            measurements[:, CONTROL_SLOTS] = control.float()
        events = features.new_zeros(batch, len(spec.EVENT_NAMES), dtype=torch.float32)
        for name in ("collision", "off_road"):
            events[:, spec.EVENT_NAMES.index(name)] = components[name]
        events[:, spec.EVENT_NAMES.index("progress_m")] = components["progress"]
        reward = self.world_model.heads.reward(components, self.reward_weights)
        return StepPrediction(features, components, reward, measurements, events, out["images"])

    # -------------------------------------------------------------------------------------- contexts
    @torch.no_grad()
    def observe_context(
        self,
        context: dict[str, Tensor],
        generator: torch.Generator | None = None,
        decode_images: bool = False,
        sample: bool = True,
    ) -> tuple[DriveState, StepPrediction]:
        """Filter real windows (N, T, ...) and start drives from their last posterior states.

        The context needs the world model's fields plus ``route``; ``expert_waypoints`` and ``ego_pose`` are
        used when present. The returned prediction carries the context's real last measurements and events.
        """
        _, _, last = self.world_model.observe(context, generator=generator, sample=sample)
        measured = context["measurements"][:, -1].float()
        prediction = self.predict(last, decode_images=decode_images)
        prediction.measurements = measured
        prediction.events = context["events"][:, -1].float() if "events" in context else prediction.events
        batch, device = measured.shape[0], measured.device
        waypoints = context.get("expert_waypoints")
        pose = context.get("ego_pose")
        state = DriveState(
            latent=last,
            route=context["route"][:, -1].float(),
            expert_waypoints=waypoints[:, -1].float()
            if waypoints is not None
            else torch.zeros(batch, 8, 2, device=device),
            speed_mps=measured[:, SPEED],
            integral=torch.zeros(batch, device=device),
            pose=pose[:, -1, [0, 1, 3]].float() if pose is not None else torch.zeros(batch, 3, device=device),
            route_completion=prediction.events[:, ROUTE_COMPLETION],
        )
        return state, prediction

    # ----------------------------------------------------------------------------------------- steps
    def controls(self, state: DriveState, waypoints: Tensor) -> tuple[Tensor, Tensor]:
        """Controls (N, 3) and the new controller integral (N,) for waypoints (N, K, 2) at the state's speed."""
        return self.controller.control(waypoints.float(), state.speed_mps, state.integral, self.dt_s)

    @torch.no_grad()
    def step(
        self,
        state: DriveState,
        control: Tensor,
        integral: Tensor | None = None,
        generator: torch.Generator | None = None,
        sample: bool = True,
        decode_images: bool = False,
    ) -> tuple[DriveState, StepPrediction]:
        """Apply controls (N, 3) for one step with the prior; ``integral`` is the controller's new state."""
        control = control.float().clamp(
            control.new_tensor(spec.ACTION_LOW), control.new_tensor(spec.ACTION_HIGH)
        )
        latent = self.world_model.img_step(state.latent, control, generator, sample)
        prediction = self.predict(latent, control, decode_images)
        speed = prediction.components["speed"].float().clamp_min(0.0)
        if YAW_RATE in self.measurement_index:
            yaw_rate = prediction.measurements[:, YAW_RATE]
        else:  # kinematic bicycle: yaw rate = v tan(wheel angle) / wheelbase
            wheel = control[:, 1] * math.radians(self.vehicle.max_steer_deg)
            yaw_rate = torch.rad2deg(speed * torch.tan(wheel) / self.vehicle.wheelbase_m)
        mean_speed = 0.5 * (state.speed_mps + speed)
        route, shift, turn = advance_ego_frame(state.route, mean_speed, yaw_rate, self.dt_s)
        yaw = torch.deg2rad(state.pose[:, 2])
        world_shift = torch.stack(
            [
                torch.cos(yaw) * shift[:, 0] - torch.sin(yaw) * shift[:, 1],
                torch.sin(yaw) * shift[:, 0] + torch.cos(yaw) * shift[:, 1],
            ],
            -1,
        )
        pose = torch.cat(
            [state.pose[:, :2] + world_shift, (state.pose[:, 2] + torch.rad2deg(turn)).unsqueeze(-1)], -1
        )
        prediction.events[:, ROUTE_COMPLETION] = state.route_completion
        new_state = replace(
            state,
            latent=latent,
            route=route,
            speed_mps=speed,
            integral=state.integral if integral is None else integral,
            pose=pose,
        )
        return new_state, prediction
