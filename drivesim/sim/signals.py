"""Traffic control read from the map: traffic lights grouped per junction, stop and yield signs, speed limits.

``SignalLayout`` is static, built once per map from ``carla.Map.get_all_landmarks()`` (types ``1000001`` traffic
light, ``206`` stop, ``205`` yield, ``274`` speed limit): a landmark on a junction's connecting road (CARLA's
towns write ``signalReference``s there) controls that junction lane; one on an incoming road controls the
junction lanes its lanes lead into. Lights are grouped per junction and cycle as CARLA's ``TrafficLightGroup``
does: one pole at a time goes green, yellow, then all red for the red time, while every other pole is red
(carla-simulator/carla issue #7738; defaults 10 s / 3 s / 2 s as CARLA's ``TrafficLightController``). Maps
whose OpenDRIVE holds no lights (e.g. the 2019 Town03) can get lights inferred at junctions with three or more
incoming roads (``SignalsConfig.infer_lights``), as CARLA's own Town03 has.

``TrafficLights`` is the per-episode state: a phase offset per junction and optional per-pole overrides
(scenarios set a light's state through them).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import carla
import numpy as np

from drivesim.sim.config import SignalsConfig
from drivesim.sim.road import RoadNetwork

logger = logging.getLogger(__name__)

RED, YELLOW, GREEN = 0, 1, 2
LIGHT_STATE_NAMES = ("red", "yellow", "green")
SIGN_NONE, SIGN_STOP, SIGN_YIELD = 0, 1, 2
SHARED_ENTRY_M = 1.0  # junction lanes starting this close together share their entry's control [m]
TYPE_LIGHT, TYPE_STOP, TYPE_YIELD, TYPE_SPEED = "1000001", "206", "205", "274"
KMH = 1.0 / 3.6


@dataclass(frozen=True)
class SignalLayout:
    """Static traffic control of one map.

    Attributes:
        pole_xy, pole_yaw_rad: (L,) positions and facing headings of the light poles (for sensors) [m, rad].
        pole_junction: (L,) index of each pole's junction group.
        pole_phase: (L,) the pole's turn within its group's cycle (0 first).
        group_size: (G,) number of poles per junction group.
        light_of_segment: (S,) pole controlling each junction lane, -1 where none.
        sign_of_segment: (S,) ``SIGN_STOP`` / ``SIGN_YIELD`` where a sign controls the junction lane's entry.
        sign_xy, sign_yaw_rad, sign_kind: stop/yield sign posts (for sensors).
        speed_limit_mps: (S,) speed limit of every lane [m/s].
        controlled: (K,) junction lanes with a light or a sign, whose entry is a stop line.
        stop_xy, stop_yaw_rad, stop_half_width_m: (K,) the stop lines (junction-lane entries).
    """

    pole_xy: np.ndarray
    pole_yaw_rad: np.ndarray
    pole_junction: np.ndarray
    pole_phase: np.ndarray
    group_size: np.ndarray
    light_of_segment: np.ndarray
    sign_of_segment: np.ndarray
    sign_xy: np.ndarray
    sign_yaw_rad: np.ndarray
    sign_kind: np.ndarray
    speed_limit_mps: np.ndarray
    controlled: np.ndarray
    stop_xy: np.ndarray
    stop_yaw_rad: np.ndarray
    stop_half_width_m: np.ndarray
    inferred_lights: bool = False

    @property
    def num_poles(self) -> int:
        return len(self.pole_xy)


class _Lanes:
    """Lookups from OpenDRIVE (road, lane) to network segments."""

    def __init__(self, network: RoadNetwork) -> None:
        self.network = network
        self.by_road: dict[int, list[int]] = defaultdict(list)
        for segment, (road_id, _) in enumerate(network.segment_road_lane):
            self.by_road[road_id].append(segment)

    def segments(self, road_id: int, validities: list[tuple[int, int]], orientation: str) -> list[int]:
        """Driving segments of ``road_id`` a landmark applies to.

        The lane validities decide where they are given; only without them does the orientation ("Positive":
        traffic along +s, i.e. right lanes with negative ids). CARLA's towns mix up orientation and validity
        (Town01's references on junction lanes -1 say "Negative"), and CARLA itself goes by the validities.
        """
        ranges = [(min(a, b), max(a, b)) for a, b in validities if (a, b) != (0, 0)]
        found = []
        for segment in self.by_road.get(road_id, []):
            lane_id = self.network.segment_road_lane[segment][1]
            if ranges:
                if not any(low <= lane_id <= high for low, high in ranges):
                    continue
            elif orientation == "Positive" and lane_id > 0 or orientation == "Negative" and lane_id < 0:
                continue
            found.append(segment)
        return found

    def controlled_junction_lanes(self, landmark: carla.Landmark) -> list[int]:
        """Junction lanes a light or sign controls."""
        network = self.network
        segments = self.segments(landmark.road_id, list(landmark.get_lane_validities()), str(landmark.orientation))
        inside = [s for s in segments if network.segment_in_junction[s]]
        if inside:
            return inside
        controlled = []
        for segment in segments:  # a sign on an incoming road: the junction lanes its lanes lead into
            controlled.extend(t for t in network.successors[segment] if network.segment_in_junction[t])
        return sorted(set(controlled))


def _kerb_point(network: RoadNetwork, segment: int, at_end: bool) -> tuple[np.ndarray, float]:
    """A point beside the lane's right edge at its start or end (where a pole or sign stands) and its heading."""
    line = network.offset_line(segment, 0.5, 1.0)
    index = -1 if at_end else 0
    yaw = network.yaw_rad[network.segment_start[segment] + (network.segment_count[segment] - 1 if at_end else 0)]
    return line[index], float(yaw)


def build_signal_layout(network: RoadNetwork, config: SignalsConfig) -> SignalLayout:
    """Read the map's lights, signs and speed limits (and infer lights where configured)."""
    carla_map, segments = network.map, network.num_segments
    lanes = _Lanes(network)
    landmarks = carla_map.get_all_landmarks()
    junction_roads = {network.segment_road_lane[s][0] for s in np.flatnonzero(network.segment_in_junction)}
    # Lights: landmark id -> controlled junction lanes and a pole position.
    pole_lanes: dict[str, set[int]] = defaultdict(set)
    pole_place: dict[str, tuple[np.ndarray, float]] = {}
    sign_of_segment = np.zeros(segments, dtype=np.int8)
    sign_places: list[tuple[np.ndarray, float, int]] = []
    for landmark in landmarks:
        kind = landmark.type
        if kind not in (TYPE_LIGHT, TYPE_STOP, TYPE_YIELD):
            continue
        controlled = lanes.controlled_junction_lanes(landmark)
        location = landmark.transform.location
        place = (np.array([location.x, location.y]), float(np.radians(landmark.transform.rotation.yaw)))
        if kind == TYPE_LIGHT:
            pole_lanes[landmark.id].update(controlled)
            if landmark.road_id not in junction_roads:
                pole_place[landmark.id] = place  # the definition beside the incoming road, not a reference
            pole_place.setdefault(landmark.id, place)
        elif controlled:
            value = SIGN_STOP if kind == TYPE_STOP else SIGN_YIELD
            sign_of_segment[controlled] = np.maximum(sign_of_segment[controlled], value)
            sign_places.append((*place, value))
    inferred = False
    if not pole_lanes and config.infer_lights:
        pole_lanes, pole_place = _infer_lights(network)
        inferred = bool(pole_lanes)
    light_of_segment = np.full(segments, -1, dtype=np.int64)
    pole_ids = [pole for pole in sorted(pole_lanes, key=_sort_key) if pole_lanes[pole]]
    junction_of_pole = []
    for index, pole in enumerate(pole_ids):
        controlled = sorted(pole_lanes[pole])
        light_of_segment[controlled] = index
        junction_of_pole.append(int(np.bincount(network.segment_junction[controlled] + 1).argmax()) - 1)
    groups = sorted(set(junction_of_pole))
    pole_junction = np.array([groups.index(j) for j in junction_of_pole], dtype=np.int64)
    pole_phase = np.zeros(len(pole_ids), dtype=np.int64)
    group_size = np.zeros(len(groups), dtype=np.int64)
    for index, group in enumerate(pole_junction):
        pole_phase[index] = group_size[group]
        group_size[group] += 1
    _share_entry_control(network, light_of_segment, sign_of_segment)
    sign_of_segment[light_of_segment >= 0] = SIGN_NONE  # a light overrides a sign
    controlled_lanes = np.flatnonzero((light_of_segment >= 0) | (sign_of_segment > 0))
    stop_xy = network.points[network.segment_start[controlled_lanes]].reshape(-1, 2)
    stop_yaw = network.yaw_rad[network.segment_start[controlled_lanes]]
    stop_half_width = network.width_m[network.segment_start[controlled_lanes]] * 0.5
    if sign_places:
        sign_xy = np.array([place[0] for place in sign_places])
        sign_yaw = np.array([place[1] for place in sign_places])
        sign_kind = np.array([place[2] for place in sign_places], dtype=np.int8)
    else:
        sign_xy, sign_yaw, sign_kind = np.zeros((0, 2)), np.zeros(0), np.zeros(0, np.int8)
    layout = SignalLayout(
        pole_xy=np.array([pole_place[p][0] for p in pole_ids]).reshape(-1, 2),
        pole_yaw_rad=np.array([pole_place[p][1] for p in pole_ids]),
        pole_junction=pole_junction,
        pole_phase=pole_phase,
        group_size=group_size,
        light_of_segment=light_of_segment,
        sign_of_segment=sign_of_segment,
        sign_xy=sign_xy,
        sign_yaw_rad=sign_yaw,
        sign_kind=sign_kind,
        speed_limit_mps=_speed_limits(network, landmarks, lanes, config),
        controlled=controlled_lanes,
        stop_xy=stop_xy,
        stop_yaw_rad=stop_yaw,
        stop_half_width_m=stop_half_width,
        inferred_lights=inferred,
    )
    logger.debug("signals of %s: %d lights in %d groups, %d signed lanes", network.name, layout.num_poles,
                 len(groups), int((sign_of_segment > 0).sum()))
    return layout


def _share_entry_control(network: RoadNetwork, light_of_segment: np.ndarray, sign_of_segment: np.ndarray) -> None:
    """Junction lanes that start where a controlled one starts, heading the same way, share its light or sign.

    Maps draw overlapping junction lanes from one entry whose predecessors differ (Town03); a car on the
    uncontrolled twin crosses the same stop line, so it obeys (and is judged by) the same control. Repeated
    until nothing changes: a twin of a twin shares it too.
    """
    junction = np.flatnonzero(network.segment_in_junction)
    start = network.points[network.segment_start[junction]]
    yaw = network.yaw_rad[network.segment_start[junction]]
    apart = np.linalg.norm(start[:, None] - start[None], axis=-1)
    turn = np.abs(np.angle(np.exp(1j * (yaw[:, None] - yaw[None]))))
    twins = np.nonzero((apart < SHARED_ENTRY_M) & (turn < np.radians(20.0)))
    free, source = junction[twins[0]], junction[twins[1]]
    while True:
        take = (light_of_segment[free] < 0) & (sign_of_segment[free] == 0)
        take &= (light_of_segment[source] >= 0) | (sign_of_segment[source] > 0)
        if not take.any():
            return
        light_of_segment[free[take]] = light_of_segment[source[take]]
        sign_of_segment[free[take]] = sign_of_segment[source[take]]


def _sort_key(pole_id: str) -> tuple[int, str]:
    return (int(pole_id), "") if pole_id.lstrip("-").isdigit() else (0, pole_id)


def _infer_lights(network: RoadNetwork) -> tuple[dict[str, set[int]], dict[str, tuple[np.ndarray, float]]]:
    """One virtual light per incoming road at junctions entered from three or more roads."""
    incoming: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))  # junction -> road -> lanes
    approach: dict[tuple[int, int], int] = {}
    for segment in np.flatnonzero(network.segment_in_junction):
        for before in network.predecessors[segment]:
            if network.segment_in_junction[before]:
                continue
            road_id = network.segment_road_lane[before][0]
            incoming[int(network.segment_junction[segment])][road_id].add(int(segment))
            approach[(int(network.segment_junction[segment]), road_id)] = before
    pole_lanes: dict[str, set[int]] = {}
    pole_place: dict[str, tuple[np.ndarray, float]] = {}
    for junction in sorted(incoming):
        roads = incoming[junction]
        if len(roads) < 3:
            continue
        for road_id in sorted(roads):
            pole = f"inferred_{junction}_{road_id}"
            pole_lanes[pole] = roads[road_id]
            pole_place[pole] = _kerb_point(network, approach[(junction, road_id)], at_end=True)
    return pole_lanes, pole_place


def _speed_limits(network: RoadNetwork, landmarks: list[carla.Landmark], lanes: _Lanes,
                  config: SignalsConfig) -> np.ndarray:
    """Per-lane limit [m/s], as CARLA sets it: from speed signs (the lanes of the sign's road); lanes without a
    sign (junction lanes among them) inherit from their predecessors; lanes never reached get the default."""
    limit = np.full(network.num_segments, np.nan)
    for landmark in landmarks:
        if landmark.type != TYPE_SPEED or landmark.value <= 0:
            continue
        # CARLA's towns label these signs "mph" but CARLA drives them as km/h (Town01's Speed_30/60/90).
        controlled = lanes.segments(landmark.road_id, list(landmark.get_lane_validities()), str(landmark.orientation))
        limit[controlled] = landmark.value * KMH
    for _ in range(8):  # inherit through junctions and unsigned sections
        missing = np.flatnonzero(np.isnan(limit))
        if len(missing) == 0:
            break
        for segment in missing:
            known = [limit[p] for p in network.predecessors[segment] if not np.isnan(limit[p])]
            if known:
                limit[segment] = min(known)
    return np.where(np.isnan(limit), config.default_speed_limit_kmh * KMH, limit)


class TrafficLights:
    """Light states of one episode: junction cycles with seeded offsets, plus per-pole overrides."""

    def __init__(self, layout: SignalLayout, config: SignalsConfig, rng: np.random.Generator) -> None:
        self.layout = layout
        self.config = config
        phase_s = config.green_s + config.yellow_s + config.red_s
        self._phase_s = phase_s
        self._cycle_s = np.maximum(layout.group_size, 1) * phase_s  # (G,)
        self._offset_s = rng.uniform(0.0, 1.0, size=len(layout.group_size)) * self._cycle_s
        self.override = np.full(layout.num_poles, -1, dtype=np.int8)  # forced state per pole, -1 none
        self.time_s = 0.0
        self.state = np.zeros(layout.num_poles, dtype=np.int8)
        self._next_change_s = 0.0
        self._update()

    def step(self, dt_s: float) -> None:
        self.time_s += dt_s
        if self.time_s >= self._next_change_s:
            self._update()

    def _update(self) -> None:
        layout, config = self.layout, self.config
        if layout.num_poles == 0:
            self._next_change_s = float("inf")
            return
        local = np.mod(self.time_s + self._offset_s[layout.pole_junction], self._cycle_s[layout.pole_junction])
        active = (local // self._phase_s).astype(np.int64) == layout.pole_phase
        within = np.mod(local, self._phase_s)
        state = np.where(within < config.green_s, GREEN, np.where(within < config.green_s + config.yellow_s, YELLOW, RED))
        self.state = np.where(self.override >= 0, self.override, np.where(active, state, RED)).astype(np.int8)
        # Every state holds until the next phase boundary of some pole: no need to recompute before it.
        boundaries = np.array([config.green_s, config.green_s + config.yellow_s, self._phase_s])
        to_boundary = np.min(np.where(boundaries[None, :] > within[:, None] + 1e-9, boundaries[None, :] - within[:, None], np.inf), axis=1)
        self._next_change_s = self.time_s + max(float(to_boundary.min()) - 1e-9, 0.0)

    def set_state(self, pole: int, state: int | None) -> None:
        """Force pole ``pole`` to ``state`` (RED/YELLOW/GREEN), or give it back to its cycle (None)."""
        self.override[pole] = -1 if state is None else state
        self._update()

    def lane_state(self, segments: np.ndarray) -> np.ndarray:
        """Light state of junction lanes (...), -1 where no light controls them."""
        pole = self.layout.light_of_segment[segments]
        return np.where(pole >= 0, self.state[np.maximum(pole, 0)] if len(self.state) else -1, -1)

    def time_to_change_s(self, pole: int) -> float:
        """Seconds until pole ``pole`` next changes state (inf when overridden)."""
        if self.override[pole] >= 0:
            return float("inf")
        layout, config = self.layout, self.config
        group = layout.pole_junction[pole]
        local = (self.time_s + self._offset_s[group]) % self._cycle_s[group]
        within = local - layout.pole_phase[pole] * self._phase_s
        if 0.0 <= within < config.green_s:
            return float(config.green_s - within)
        if 0.0 <= within < config.green_s + config.yellow_s:
            return float(config.green_s + config.yellow_s - within)
        start = layout.pole_phase[pole] * self._phase_s
        return float((start - local) % self._cycle_s[group])
