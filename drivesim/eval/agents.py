"""Evaluation stage: the agent interface, the built-in agents and the agent registry.

An agent sees only the observation keys it declares (and the evaluation config allows); it answers either a
control (3,) [throttle, steer, brake] or future waypoints (K, 2) in the ego frame at times (k+1) x 0.5 s,
which the shared ``drivesim.sim.controller.WaypointController`` turns into a control. Only agents marked
``privileged`` get ``RouteInfo.privileged``, a handle to the simulator's expert. Reference agents: ``expert`` (the
clean expert), ``careless`` (the expert ignoring other road users, lights and signs), ``noisy`` (the expert with
the data-collection steer noise), ``constant`` and ``random``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from drivesim import spec
from drivesim.eval.config import EvalConfig
from drivesim.sim.config import SimConfig
from drivesim.utils import derive_seed


class PrivilegedAccess(Protocol):
    """What a privileged agent may ask the simulator: the clean expert's control, or the episode's driver's."""

    def expert_action(self) -> np.ndarray: ...

    def driver_action(self) -> np.ndarray: ...


@dataclass(frozen=True)
class RouteInfo:
    """What an agent learns about the route it is about to drive.

    ``plan`` is the route as the simulator builds it (``segments``, ``start_s_m``, ``length_m`` on the map
    ``map_name``/``map_seed``): the global plan a Leaderboard agent gets.
    """

    route_id: str
    map_name: str
    map_seed: int
    seed: int
    route_length_m: float
    dt_s: float
    privileged: PrivilegedAccess | None = None
    plan: Mapping[str, Any] | None = None


class Agent:
    """A driving agent for closed-loop evaluation.

    Attributes:
        observation_keys: Observation keys the agent reads; it receives no others.
        privileged: Whether the agent needs the simulator's expert (only built-in experts should).
        driver_mode: The simulator's driver mode for the route (``reset(options={"driver": ...})``); None: clean.
    """

    observation_keys: tuple[str, ...] = ()
    privileged: bool = False
    driver_mode: str | None = None

    def reset(self, route_info: RouteInfo) -> None:
        """Prepare for a new route (reseed, clear memory)."""

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """A control (3,) [throttle, steer, brake] or waypoints (K, 2) in the ego frame [m]."""
        raise NotImplementedError(
            f"{type(self).__name__}.act(observation) must return a control (3,) or waypoints (K, 2)"
        )


class ExpertAgent(Agent):
    """The simulator's privileged expert (clean, no noise): the upper reference."""

    privileged = True

    def __init__(self) -> None:
        self._access: PrivilegedAccess | None = None

    def reset(self, route_info: RouteInfo) -> None:
        if route_info.privileged is None:
            raise RuntimeError("the expert agent needs privileged simulator access")
        self._access = route_info.privileged

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        if self._access is None:
            raise RuntimeError("ExpertAgent.act() before reset()")
        return np.asarray(self._access.expert_action(), dtype=np.float32)


class DriverAgent(ExpertAgent):
    """The simulator's data-collection driver in one of its modes: ``careless`` (the expert's route and speed
    plan with no vehicles, walkers, props, lights or signs) or ``noisy`` (the expert plus steer bursts)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.driver_mode = mode

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        if self._access is None:
            raise RuntimeError("DriverAgent.act() before reset()")
        return np.asarray(self._access.driver_action(), dtype=np.float32)


class RandomAgent(Agent):
    """Uniformly random controls, seeded from the route seed: the lower reference."""

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    def reset(self, route_info: RouteInfo) -> None:
        self._rng = np.random.default_rng(derive_seed(route_info.seed, "random-agent"))

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._rng.uniform(spec.ACTION_LOW, spec.ACTION_HIGH).astype(np.float32)


class ConstantAgent(Agent):
    """A fixed control (default throttle 0.5, no steer, no brake)."""

    def __init__(self, throttle: float = 0.5, steer: float = 0.0, brake: float = 0.0) -> None:
        self._control = spec.action_from_control(throttle, steer, brake)

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._control.copy()


# A factory builds an agent from the text after "name:" in an agent spec (None without one) and the config.
# Factories must be module-level callables so that spawned worker processes can unpickle them.
AgentFactory = Callable[[str | None, EvalConfig], Agent]


def _expert_factory(argument: str | None, config: EvalConfig) -> Agent:
    return ExpertAgent()


def _careless_factory(argument: str | None, config: EvalConfig) -> Agent:
    return DriverAgent("careless")


def _noisy_factory(argument: str | None, config: EvalConfig) -> Agent:
    return DriverAgent("noisy")


def _random_factory(argument: str | None, config: EvalConfig) -> Agent:
    return RandomAgent()


def _constant_factory(argument: str | None, config: EvalConfig) -> Agent:
    """``constant`` or ``constant:THROTTLE[,STEER[,BRAKE]]``."""
    values = [float(part) for part in argument.split(",")] if argument else []
    return ConstantAgent(*values)


_REGISTRY: dict[str, AgentFactory] = {
    "expert": _expert_factory,
    "careless": _careless_factory,
    "noisy": _noisy_factory,
    "random": _random_factory,
    "constant": _constant_factory,
}
# Agents defined in other stages: importing the module registers them (keeps eval free of torch imports).
AGENT_PLUGIN_MODULES: dict[str, str] = {
    "policy": "drivesim.policy.agent",
    "leaderboard": "carla_bridge.leaderboard.eval_agent",  # leaderboard:AGENT.py[,CONF]: a Leaderboard agent
}


def register_agent(name: str, factory: AgentFactory, overwrite: bool = False) -> None:
    """Make ``factory`` available as agent ``name`` (used as ``--agent name`` or ``--agent name:ARG``)."""
    if ":" in name or not name:
        raise ValueError(f"agent name {name!r} must be non-empty and contain no ':'")
    if name in _REGISTRY and not overwrite and _REGISTRY[name] is not factory:
        raise ValueError(f"agent {name!r} is already registered")
    _REGISTRY[name] = factory


def agent_names() -> list[str]:
    """Registered agent names (plugins included once imported)."""
    return sorted(set(_REGISTRY) | set(AGENT_PLUGIN_MODULES))


def resolve_agent(agent_spec: str) -> tuple[AgentFactory, str | None]:
    """Split ``name[:argument]`` and find the factory (importing a plugin module if needed).

    Raises:
        ValueError: No agent of that name.
    """
    name, _, argument = agent_spec.partition(":")
    if name not in _REGISTRY and name in AGENT_PLUGIN_MODULES:
        try:
            importlib.import_module(AGENT_PLUGIN_MODULES[name])
        except ModuleNotFoundError as error:
            raise ValueError(f"agent {name!r} needs {AGENT_PLUGIN_MODULES[name]}, which is not available: {error}") from None
    if name not in _REGISTRY:
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(agent_names())}")
    return _REGISTRY[name], argument or None


def make_agent(agent_spec: str, config: EvalConfig) -> Agent:
    """Build the agent named by ``agent_spec`` ("expert", "constant:0.3", "policy:runs/x.ckpt")."""
    factory, argument = resolve_agent(agent_spec)
    return factory(argument, config)


def observation_keys_for(agent: Agent, config: EvalConfig) -> tuple[str, ...]:
    """The keys ``agent`` receives; a non-privileged agent asking for a forbidden key is an error."""
    forbidden = [key for key in agent.observation_keys if key not in config.allowed_observation_keys]
    if forbidden and not agent.privileged:
        raise ValueError(
            f"{type(agent).__name__} asks for observation keys {forbidden} that evaluation does not grant "
            f"(allowed: {list(config.allowed_observation_keys)})"
        )
    return tuple(agent.observation_keys)


def filter_observation(observation: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Only the granted keys; a granted key the simulator does not produce is an error."""
    missing = [key for key in keys if observation.get(key) is None]
    if missing:
        raise KeyError(f"the simulator produces no {missing} (switch the sensor on in the eval config's sensors)")
    return {key: observation[key] for key in keys}


class ControlAdapter:
    """Turns an agent's answer into a control; waypoints go through the shared waypoint controller."""

    def __init__(self, sim_config: SimConfig) -> None:
        self._sim_config = sim_config
        self._controller: Any = None

    def __call__(self, answer: np.ndarray, speed_mps: float) -> np.ndarray:
        """Control (3,) float32 for an agent answer: a control (3,) or waypoints (K, 2)."""
        answer = np.asarray(answer, dtype=np.float32)
        if answer.shape == (len(spec.ACTION_NAMES),):
            return np.clip(answer, spec.ACTION_LOW, spec.ACTION_HIGH)
        if answer.ndim == 2 and answer.shape[1] == 2:
            controller = self._waypoint_controller()
            return np.asarray(controller.control(answer, speed_mps, self._sim_config.episode.dt_s), dtype=np.float32)
        raise ValueError(f"an agent must answer a control (3,) or waypoints (K, 2), not shape {answer.shape}")

    def _waypoint_controller(self) -> Any:
        if self._controller is None:
            try:
                from drivesim.sim.controller import WaypointController
            except ImportError as error:
                raise RuntimeError(f"waypoint agents need drivesim.sim.controller.WaypointController: {error}") from None
            self._controller = WaypointController(self._sim_config.vehicle, self._sim_config.waypoint_dt_s)
        return self._controller

    def reset(self) -> None:
        """Clear the controller's state (PID integral) at a route start."""
        if self._controller is not None:
            self._controller.reset()
