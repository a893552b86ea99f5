"""Procedural OpenDRIVE generation for the built-in maps ('straight', 'junction', 'town').

Roads have two 3.5 m driving lanes in each direction (right-hand traffic), then on each side an optional
2.5 m parking lane and a sidewalk. Junctions are squares whose connecting roads are straight lines (through
traffic, both lanes) and quarter arcs (right turns from the outer lane, left turns from the inner lane).
Signals are written as CARLA's towns write them, so ``carla.Map.get_all_landmarks()`` reads them offline:
four-way junctions get one traffic light (type 1000001) per incoming road with a ``signalReference`` on every
connecting road it controls; three-way junctions get a stop sign (type 206) on the minor road; every road
carries speed-limit signs (type 274, km/h) and every arm of a three- or four-way junction a crosswalk object.
Geometry is written in OpenDRIVE's right-handed inertial frame (x east, y north); carla.Map converts it to
CARLA's left-handed frame (y flipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LANE_WIDTH_M = 3.5
PARKING_WIDTH_M = 2.5
JUNCTION_HALF_SIZE_M = 12.0  # half the side of a junction square; a road's lanes fit within it [m]
CROSSWALK_WIDTH_M = 4.0
SIGNAL_LIGHT, SIGNAL_STOP, SIGNAL_SPEED = "1000001", "206", "274"  # OpenDRIVE/CARLA signal types
SPEED_LIMITS_KMH = (50.0, 30.0)  # a road's limit is one of these


@dataclass
class Geometry:
    """One planView element: a line (curvature 0) or an arc."""

    x: float
    y: float
    heading: float
    length: float
    curvature: float = 0.0

    def end(self) -> tuple[float, float, float]:
        if self.curvature == 0.0:
            return (
                self.x + self.length * math.cos(self.heading),
                self.y + self.length * math.sin(self.heading),
                self.heading,
            )
        radius = 1.0 / self.curvature
        heading_end = self.heading + self.length * self.curvature
        return (
            self.x + radius * (math.sin(heading_end) - math.sin(self.heading)),
            self.y - radius * (math.cos(heading_end) - math.cos(self.heading)),
            heading_end,
        )


@dataclass
class Road:
    road_id: int
    geometries: list[Geometry]
    junction: int = -1
    lanes_per_side: int = 2
    predecessor: tuple[str, int, str | None] | None = None  # (elementType, id, contactPoint)
    successor: tuple[str, int, str | None] | None = None
    lane_links: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)  # lane -> (pred, succ)
    parking: tuple[bool, bool] = (False, False)  # a parking lane on the (right, left) side
    sidewalks: bool = False
    speed_limit_kmh: float | None = None
    signals: list[Signal] = field(default_factory=list)
    signal_references: list[tuple[int, int]] = field(default_factory=list)  # (signal id, controlled lane)
    crosswalks: list[tuple[float, float, float]] = field(default_factory=list)  # (s, u from, u to) [m]

    @property
    def length(self) -> float:
        return sum(g.length for g in self.geometries)

    def side_width_m(self) -> float:
        """Width from the centre line to the outer edge of the wider side (driving + parking + sidewalk) [m]."""
        return self.lanes_per_side * LANE_WIDTH_M + PARKING_WIDTH_M * any(self.parking) + self.sidewalk_width_m()

    def sidewalk_width_m(self) -> float:
        if not self.sidewalks:
            return 0.0
        return JUNCTION_HALF_SIZE_M - self.lanes_per_side * LANE_WIDTH_M - PARKING_WIDTH_M * any(self.parking)


@dataclass
class Signal:
    """One OpenDRIVE signal (a traffic light, stop sign or speed-limit sign) on a road."""

    signal_id: int
    kind: str  # SIGNAL_LIGHT, SIGNAL_STOP or SIGNAL_SPEED
    s: float
    t: float
    orientation: str  # "+": for traffic driving towards +s (right lanes), "-": towards -s
    lanes: tuple[int, int]  # validity fromLane, toLane
    value: float = -1.0


@dataclass
class Connection:
    junction: int
    incoming: int
    connecting: int
    lane_from: int


class OpenDriveBuilder:
    """Accumulates roads and junctions and writes OpenDRIVE 1.4 XML."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.roads: list[Road] = []
        self.connections: list[Connection] = []
        self.junction_ids: list[int] = []
        self._next_signal_id = 5000

    def new_signal(self, road: Road, kind: str, s: float, t: float, orientation: str, lanes: tuple[int, int],
                   value: float = -1.0) -> Signal:
        signal = Signal(self._next_signal_id, kind, s, t, orientation, lanes, value)
        self._next_signal_id += 1
        road.signals.append(signal)
        return signal

    def add_road(self, geometries: list[Geometry], **kwargs) -> Road:
        road = Road(road_id=len(self.roads), geometries=geometries, **kwargs)
        self.roads.append(road)
        return road

    def to_xml(self) -> str:
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            "<OpenDRIVE>",
            f'  <header revMajor="1" revMinor="4" name="{self.name}" version="1.00" north="0" south="0" east="0" west="0">',
            "    <geoReference><![CDATA[+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m]]></geoReference>",
            "  </header>",
        ]
        for road in self.roads:
            parts.extend(_road_xml(road))
        for junction_id in self.junction_ids:
            parts.append(f'  <junction id="{junction_id}" name="junction{junction_id}">')
            for index, conn in enumerate(c for c in self.connections if c.junction == junction_id):
                parts.append(
                    f'    <connection id="{index}" incomingRoad="{conn.incoming}" '
                    f'connectingRoad="{conn.connecting}" contactPoint="start">'
                )
                parts.append(f'      <laneLink from="{conn.lane_from}" to="-1"/>')
                parts.append("    </connection>")
            parts.append("  </junction>")
        parts.append("</OpenDRIVE>")
        return "\n".join(parts) + "\n"


def _link_xml(tag: str, link: tuple[str, int, str | None]) -> str:
    element_type, element_id, contact = link
    contact_attr = f' contactPoint="{contact}"' if contact else ""
    return f'      <{tag} elementType="{element_type}" elementId="{element_id}"{contact_attr}/>'


def _lane_xml(lane_id: int, road: Road, mark: tuple[str, str], lane_type: str = "driving",
              width_m: float = LANE_WIDTH_M) -> list[str]:
    mark_type, color = mark
    lines = [f'          <lane id="{lane_id}" type="{lane_type}" level="false">']
    pred, succ = road.lane_links.get(lane_id, (None, None))
    if pred is not None or succ is not None:
        lines.append("            <link>")
        if pred is not None:
            lines.append(f'              <predecessor id="{pred}"/>')
        if succ is not None:
            lines.append(f'              <successor id="{succ}"/>')
        lines.append("            </link>")
    lines.append(f'            <width sOffset="0" a="{width_m}" b="0" c="0" d="0"/>')
    lines.append(f'            <roadMark sOffset="0" type="{mark_type}" weight="standard" color="{color}" width="0.15"/>')
    lines.append("          </lane>")
    return lines


def _kerb_lanes(road: Road, side: int) -> list[tuple[str, float]]:
    """(type, width) of the non-driving lanes on one side (0 right, 1 left), inner to outer."""
    lanes = [("parking", PARKING_WIDTH_M)] if road.parking[side] else []
    if road.sidewalks:
        lanes.append(("sidewalk", road.sidewalk_width_m() + PARKING_WIDTH_M * (any(road.parking) and not road.parking[side])))
    return lanes


def _side_xml(road: Road, side: int) -> list[str]:
    """The lanes of one side: driving lanes (outer one solid-marked), then parking and sidewalk."""
    sign = -1 if side == 0 else 1
    in_junction = road.junction >= 0
    driving = 1 if in_junction else road.lanes_per_side
    lanes: list[list[str]] = []
    for index in range(1, driving + 1):
        outer = index == driving
        mark = ("none", "standard") if in_junction else ("solid" if outer else "broken", "standard")
        lanes.append(_lane_xml(sign * index, road, mark))
    if not in_junction:
        for offset, (lane_type, width) in enumerate(_kerb_lanes(road, side), start=driving + 1):
            mark = ("solid", "standard") if lane_type == "parking" else ("curb", "standard")
            lanes.append(_lane_xml(sign * offset, road, mark, lane_type, width))
    if side == 1:
        lanes.reverse()  # left lanes are listed outer to inner
    return [line for lane in lanes for line in lane]


def _signals_xml(road: Road) -> list[str]:
    lines = []
    for signal in road.signals:
        name = {SIGNAL_LIGHT: "Signal_3Light_Post01", SIGNAL_STOP: "Stop", SIGNAL_SPEED: f"Speed_{signal.value:.0f}"}[signal.kind]
        unit = ' unit="km/h"' if signal.kind == SIGNAL_SPEED else ""
        dynamic = "yes" if signal.kind == SIGNAL_LIGHT else "no"
        lines.append(
            f'      <signal name="{name}" id="{signal.signal_id}" s="{signal.s:.4f}" t="{signal.t:.4f}" zOffset="0" '
            f'hOffset="0" orientation="{signal.orientation}" dynamic="{dynamic}" country="OpenDRIVE" '
            f'type="{signal.kind}" subtype="-1" value="{signal.value:g}"{unit} height="1.0" width="0.5">'
        )
        lines.append(f'        <validity fromLane="{signal.lanes[0]}" toLane="{signal.lanes[1]}"/>')
        lines.append("      </signal>")
    for signal_id, lane in road.signal_references:
        orientation = "+" if lane < 0 else "-"
        lines.append(f'      <signalReference id="{signal_id}" s="0.0" t="0.0" orientation="{orientation}">')
        lines.append(f'        <validity fromLane="{lane}" toLane="{lane}"/>')
        lines.append("      </signalReference>")
    return ["    <signals>", *lines, "    </signals>"] if lines else []


def _objects_xml(road: Road) -> list[str]:
    lines = []
    half = road.lanes_per_side * LANE_WIDTH_M + PARKING_WIDTH_M * any(road.parking)
    for index, (s, u_from, u_to) in enumerate(road.crosswalks):
        lines.append(
            f'      <object id="{9000 + 100 * road.road_id + index}" name="crosswalk" s="{s:.4f}" t="0" zOffset="0" '
            f'hdg="0" type="crosswalk" orientation="none" length="{abs(u_to - u_from):.3f}" width="{2 * half:.3f}">'
        )
        lines.append("        <outline>")
        for u, v in ((u_from, -half), (u_to, -half), (u_to, half), (u_from, half), (u_from, -half)):
            lines.append(f'          <cornerLocal u="{u:.3f}" v="{v:.3f}" z="0"/>')
        lines.append("        </outline>")
        lines.append("      </object>")
    return ["    <objects>", *lines, "    </objects>"] if lines else []


def _road_xml(road: Road) -> list[str]:
    lines = [
        f'  <road name="road{road.road_id}" length="{road.length:.6f}" id="{road.road_id}" junction="{road.junction}">'
    ]
    if road.predecessor or road.successor:
        lines.append("    <link>")
        if road.predecessor:
            lines.append(_link_xml("predecessor", road.predecessor))
        if road.successor:
            lines.append(_link_xml("successor", road.successor))
        lines.append("    </link>")
    speed = road.speed_limit_kmh or SPEED_LIMITS_KMH[0]
    lines.append(f'    <type s="0" type="town"><speed max="{speed:g}" unit="km/h"/></type>')
    lines.append("    <planView>")
    s = 0.0
    for geometry in road.geometries:
        lines.append(
            f'      <geometry s="{s:.6f}" x="{geometry.x:.6f}" y="{geometry.y:.6f}" '
            f'hdg="{geometry.heading:.9f}" length="{geometry.length:.6f}">'
        )
        if geometry.curvature == 0.0:
            lines.append("        <line/>")
        else:
            lines.append(f'        <arc curvature="{geometry.curvature:.9f}"/>')
        lines.append("      </geometry>")
        s += geometry.length
    lines.append("    </planView>")
    lines.append("    <elevationProfile/>\n    <lateralProfile/>")
    lines.append("    <lanes>")
    lines.append("      <laneSection s=\"0\">")
    in_junction = road.junction >= 0
    if road.lanes_per_side > 0 and not in_junction:
        lines.append("        <left>")
        lines.extend(_side_xml(road, 1))
        lines.append("        </left>")
    center_mark = ("none", "standard") if in_junction else ("solid solid", "yellow")
    lines.append("        <center>")
    lines.append(f'          <lane id="0" type="none" level="false"><roadMark sOffset="0" type="{center_mark[0]}" weight="standard" color="{center_mark[1]}" width="0.15"/></lane>')
    lines.append("        </center>")
    lines.append("        <right>")
    lines.extend(_side_xml(road, 0))
    lines.append("        </right>")
    lines.append("      </laneSection>")
    lines.append("    </lanes>")
    lines.extend(_objects_xml(road))
    lines.extend(_signals_xml(road))
    lines.append("  </road>")
    return lines


@dataclass
class _Arm:
    """A road end that touches a junction."""

    road: Road
    at_end: bool  # the road's end (s = length) touches the junction
    direction: np.ndarray  # unit vector from the junction centre out along the arm
    connecting: list[Road] = field(default_factory=list)  # connecting roads leaving the junction through this arm


def _right_of(direction: np.ndarray) -> np.ndarray:
    return np.array([direction[1], -direction[0]])


def _add_junction(builder: OpenDriveBuilder, junction_id: int, centre: np.ndarray, arms: list[_Arm]) -> None:
    """Connecting roads between every pair of distinct arms of a square junction."""
    builder.junction_ids.append(junction_id)
    half = JUNCTION_HALF_SIZE_M
    for arm_in in arms:
        travel_in = -arm_in.direction  # incoming traffic drives towards the centre
        for arm_out in arms:
            if arm_out is arm_in:
                continue
            travel_out = arm_out.direction
            cross = travel_in[0] * travel_out[1] - travel_in[1] * travel_out[0]
            turn = 0.0 if abs(cross) < 1e-6 else float(np.sign(cross))  # -1 right turn, +1 left turn
            if turn == 0.0 or len(arms) == 2:
                lanes = (1, 2)  # through traffic, or a corner: both lanes continue
            else:
                lanes = (2,) if turn < 0 else (1,)  # right turns from the outer lane, left from the inner
            lane_pairs = [(lane_index, turn) for lane_index in lanes]
            for lane_index, turn in lane_pairs:
                centre_offset = (lane_index - 0.5) * LANE_WIDTH_M
                start_centre = centre + arm_in.direction * half + _right_of(travel_in) * centre_offset
                heading = math.atan2(travel_in[1], travel_in[0])
                left_boundary = start_centre - _right_of(travel_in) * (LANE_WIDTH_M / 2)
                if turn == 0.0:
                    geometry = Geometry(*left_boundary, heading, 2 * half)
                else:
                    # Quarter arc tangent to both lanes; its centre-line radius follows from the square.
                    centre_radius = half - centre_offset if turn < 0 else half + centre_offset
                    boundary_radius = centre_radius - turn * LANE_WIDTH_M / 2
                    geometry = Geometry(*left_boundary, heading, boundary_radius * math.pi / 2, turn / boundary_radius)
                incoming_lane = _arm_lane(arm_in, incoming=True, lane_index=lane_index)
                outgoing_lane = _arm_lane(arm_out, incoming=False, lane_index=lane_index)
                connecting = builder.add_road(
                    [geometry],
                    junction=junction_id,
                    lanes_per_side=1,
                    predecessor=("road", arm_in.road.road_id, "end" if arm_in.at_end else "start"),
                    successor=("road", arm_out.road.road_id, "end" if arm_out.at_end else "start"),
                    lane_links={-1: (incoming_lane, outgoing_lane)},
                )
                builder.connections.append(Connection(junction_id, arm_in.road.road_id, connecting.road_id, incoming_lane))
                arm_in.connecting.append(connecting)
    _add_junction_signals(builder, arms)


def _add_junction_signals(builder: OpenDriveBuilder, arms: list[_Arm]) -> None:
    """Lights at four-way junctions, a stop sign on the minor road of three-way ones, crosswalks on their arms."""
    if len(arms) < 3:
        return  # a corner: no control, no crossing
    for arm in arms:
        road = arm.road
        # Anchored 1 cm inside the road (carla.Map rejects s > length), the outline inside the junction square.
        inside = (0.51, 0.51 + CROSSWALK_WIDTH_M) if arm.at_end else (-0.51 - CROSSWALK_WIDTH_M, -0.51)
        road.crosswalks.append((road.length - 0.01 if arm.at_end else 0.01, *inside))
    if len(arms) == 4:
        controlled = list(arms)
        kind = SIGNAL_LIGHT
    else:
        opposite = [any(np.allclose(arm.direction, -other.direction) for other in arms) for arm in arms]
        controlled = [arm for arm, has_opposite in zip(arms, opposite, strict=True) if not has_opposite]
        kind = SIGNAL_STOP
    for arm in controlled:
        road = arm.road
        side = 0 if arm.at_end else 1  # incoming traffic drives on the right lanes towards the road's end
        kerb = road.lanes_per_side * LANE_WIDTH_M + PARKING_WIDTH_M * road.parking[side] + 0.5
        lanes = (-road.lanes_per_side, -1) if arm.at_end else (1, road.lanes_per_side)
        s = road.length - 1.0 if arm.at_end else 1.0
        signal = builder.new_signal(road, kind, s, -kerb if arm.at_end else kerb, "+" if arm.at_end else "-", lanes)
        for connecting in arm.connecting:
            connecting.signal_references.append((signal.signal_id, -1))


def _add_speed_signs(builder: OpenDriveBuilder, road: Road) -> None:
    """Speed-limit signs at both ends of a road, facing each direction's traffic."""
    limit = road.speed_limit_kmh or SPEED_LIMITS_KMH[0]
    for side, s, orientation in ((0, min(3.0, road.length / 2), "+"), (1, max(road.length - 3.0, road.length / 2), "-")):
        kerb = road.lanes_per_side * LANE_WIDTH_M + PARKING_WIDTH_M * road.parking[side] + 0.5
        lanes = (-road.lanes_per_side, -1) if side == 0 else (1, road.lanes_per_side)
        builder.new_signal(road, SIGNAL_SPEED, s, -kerb if side == 0 else kerb, orientation, lanes, limit)


def _arm_lane(arm: _Arm, incoming: bool, lane_index: int) -> int:
    """Lane id on an arm's road: right lanes (negative) drive from the road's start to its end."""
    towards_end = incoming == arm.at_end
    return -lane_index if towards_end else lane_index


def _straight_road(builder: OpenDriveBuilder, start: np.ndarray, end: np.ndarray, **kerbs) -> Road:
    delta = end - start
    geometry = Geometry(start[0], start[1], math.atan2(delta[1], delta[0]), float(np.hypot(*delta)))
    return builder.add_road([geometry], sidewalks=True, **kerbs)


def _finish(builder: OpenDriveBuilder) -> str:
    """Speed signs on every road, then the XML."""
    for road in list(builder.roads):
        if road.junction < 0:
            _add_speed_signs(builder, road)
    return builder.to_xml()


def town_map(seed: int = 0, blocks: int = 3) -> str:
    """A grid town of ``blocks`` x ``blocks`` blocks, junctions at every grid node, seeded block sizes."""
    rng = np.random.default_rng(seed)
    builder = OpenDriveBuilder(f"town_{seed}")
    nodes = blocks + 1
    xs = np.concatenate([[0.0], np.cumsum(rng.uniform(80.0, 120.0, size=blocks))])
    ys = np.concatenate([[0.0], np.cumsum(rng.uniform(80.0, 120.0, size=blocks))])
    arms: dict[tuple[int, int], list[_Arm]] = {(i, j): [] for i in range(nodes) for j in range(nodes)}
    half = JUNCTION_HALF_SIZE_M
    east, north = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    for i in range(nodes):
        for j in range(nodes):
            centre = np.array([xs[i], ys[j]])
            if i + 1 < nodes:
                road = _straight_road(builder, centre + east * half, np.array([xs[i + 1], ys[j]]) - east * half,
                                      **_town_kerbs(rng))
                arms[(i, j)].append(_Arm(road, at_end=False, direction=east))
                arms[(i + 1, j)].append(_Arm(road, at_end=True, direction=-east))
            if j + 1 < nodes:
                road = _straight_road(builder, centre + north * half, np.array([xs[i], ys[j + 1]]) - north * half,
                                      **_town_kerbs(rng))
                arms[(i, j)].append(_Arm(road, at_end=False, direction=north))
                arms[(i, j + 1)].append(_Arm(road, at_end=True, direction=-north))
    _link_junctions(builder, arms, {key: np.array([xs[key[0]], ys[key[1]]]) for key in arms})
    return _finish(builder)


def _town_kerbs(rng: np.random.Generator) -> dict:
    """Seeded parking lanes (40 % of road sides) and speed limit (a third of roads at 30 km/h)."""
    parking = (bool(rng.random() < 0.4), bool(rng.random() < 0.4))
    return {"parking": parking, "speed_limit_kmh": SPEED_LIMITS_KMH[int(rng.random() < 1 / 3)]}


def junction_map(seed: int = 0, arm_length_m: float = 150.0) -> str:
    """One four-way junction with four straight arms (dead ends: NPCs are re-spawned there)."""
    del seed  # the geometry is fixed; the seed only varies traffic
    builder = OpenDriveBuilder("junction")
    centre = np.zeros(2)
    arms = []
    for angle in (0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi):
        direction = np.array([math.cos(angle), math.sin(angle)]).round(12)
        road = _straight_road(builder, centre + direction * JUNCTION_HALF_SIZE_M, centre + direction * arm_length_m)
        arms.append(_Arm(road, at_end=False, direction=direction))
    _link_junctions(builder, {(0, 0): arms}, {(0, 0): centre})
    return _finish(builder)


def straight_map(seed: int = 0) -> str:
    """A 1.2 km two-way road: straight, a seeded curve, straight again."""
    rng = np.random.default_rng(seed)
    builder = OpenDriveBuilder(f"straight_{seed}")
    radius = float(rng.uniform(80.0, 160.0))
    turn = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.9))
    first = Geometry(0.0, 0.0, 0.0, 400.0)
    arc = Geometry(*first.end(), radius * abs(turn), math.copysign(1.0 / radius, turn))
    last = Geometry(*arc.end(), 1200.0 - first.length - arc.length)
    builder.add_road([first, arc, last], sidewalks=True, parking=(True, False))
    return _finish(builder)


def _link_junctions(
    builder: OpenDriveBuilder, arms: dict[tuple[int, int], list[_Arm]], centres: dict[tuple[int, int], np.ndarray]
) -> None:
    for junction_id, key in enumerate(sorted(arms), start=1000):
        if not arms[key]:
            continue
        for arm in arms[key]:
            link = ("junction", junction_id, None)
            if arm.at_end:
                arm.road.successor = link
            else:
                arm.road.predecessor = link
        _add_junction(builder, junction_id, centres[key], arms[key])


BUILTIN_MAPS = {"town": town_map, "junction": junction_map, "straight": straight_map}
