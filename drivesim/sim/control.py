"""Right of way at junctions and stop lines, from the map's lights and signs (one definition for all drivers).

A junction lane's right of way (``rank``, higher goes first) comes from its control: green light or the major
road at a signed junction > an unsigned junction's lanes > a yield sign or a stop sign already served > a red
or yellow light or an unserved stop sign (the vehicle is held at its stop line). A vehicle already inside the
junction outranks all; at equal control a left turn gives way to the others. NPCs, the expert and the way NPCs
see the ego all use these functions.
"""

from __future__ import annotations

import numpy as np

from drivesim.sim.road import RoadNetwork
from drivesim.sim.signals import GREEN, RED, SIGN_STOP, SIGN_YIELD, YELLOW, SignalLayout

RANK_HELD, RANK_YIELD, RANK_EQUAL, RANK_MAJOR, RANK_INSIDE = 0.0, 1.0, 2.0, 3.0, 4.0
YELLOW_DECEL_FACTOR = 1.5  # a yellow light holds who can stop within this multiple of the comfortable deceleration
LEFT_TURN_PENALTY = 0.5  # a left turn gives way at equal control
TURN_LEFT, TURN_STRAIGHT, TURN_RIGHT = -1, 0, 1
STOP_LINE_MARGIN_M = 0.5  # vehicles stop with their front this far before the line [m]
STOPPED_MPS = 0.1  # a stop counts below this speed (ScenarioRunner's RunningStopTest.SPEED_THRESHOLD) [m/s]
SERVE_DISTANCE_M = 4.0  # a stop is served when stopped within this distance of the line (PROXIMITY_THRESHOLD) [m]


def lane_turns(network: RoadNetwork) -> np.ndarray:
    """Turn of every junction lane (S,): left, straight or right by its heading change (CARLA yaw grows right)."""
    starts = network.segment_start
    ends = starts + network.segment_count - 1
    change = np.degrees(np.angle(np.exp(1j * (network.yaw_rad[ends] - network.yaw_rad[starts]))))
    turn = np.where(change > 30.0, TURN_RIGHT, np.where(change < -30.0, TURN_LEFT, TURN_STRAIGHT))
    return np.where(network.segment_in_junction, turn, TURN_STRAIGHT)


class JunctionControl:
    """Static right of way of every junction lane plus the dynamic part from light states."""

    def __init__(self, network: RoadNetwork, layout: SignalLayout) -> None:
        self.network = network
        self.layout = layout
        self.turn = lane_turns(network)
        junction = network.segment_junction
        signed = (layout.sign_of_segment > 0) | (layout.light_of_segment >= 0)
        signed_junctions = np.unique(junction[signed & (junction >= 0)])
        base = np.where(np.isin(junction, signed_junctions), RANK_MAJOR, RANK_EQUAL)
        base = np.where(layout.sign_of_segment == SIGN_YIELD, RANK_YIELD, base)
        self.base_rank = np.where(layout.sign_of_segment == SIGN_STOP, RANK_HELD, base)
        self._turn_penalty = np.where(self.turn == TURN_LEFT, LEFT_TURN_PENALTY, 0.0)

    def rank(self, lane: np.ndarray, inside: np.ndarray, light_state: np.ndarray, served: np.ndarray,
             ignores_control: np.ndarray) -> np.ndarray:
        """Right of way (V,) of vehicles about to enter (or inside) junction lane ``lane`` (-1: none ahead).

        Args:
            lane: (V,) the next junction lane on each vehicle's path, -1 where none.
            inside: (V,) already inside a junction.
            light_state: (V,) state of that lane's light, -1 where unlit.
            served: (V,) the vehicle has stopped at that lane's stop sign.
            ignores_control: (V,) drivers that run lights and signs claim the rank of an unsigned lane.
        """
        safe_lane = np.maximum(lane, 0)
        rank = self.base_rank[safe_lane].copy()
        sign = self.layout.sign_of_segment[safe_lane]
        rank = np.where((sign == SIGN_STOP) & served, RANK_YIELD, rank)
        lit = light_state >= 0
        rank = np.where(lit & (light_state == GREEN), RANK_MAJOR, np.where(lit, RANK_HELD, rank))
        rank = np.where(ignores_control & (rank < RANK_EQUAL), RANK_EQUAL, rank)
        rank = np.where(rank >= RANK_EQUAL, rank - self._turn_penalty[safe_lane], rank)
        rank = np.where(lane < 0, RANK_EQUAL, rank)
        return np.where(inside, RANK_INSIDE, rank)

    def stop_gaps(self, lane: np.ndarray, distance_m: np.ndarray, speed_mps: np.ndarray, half_length_m: np.ndarray,
                  light_state: np.ndarray, served: np.ndarray, comfort_decel_mps2: np.ndarray,
                  ignores_control: np.ndarray) -> np.ndarray:
        """Gap (V,) to the stop line where a vehicle must stop (inf where it may go).

        A red light holds; a yellow holds who can still stop (v^2 / 2b within the gap, b = 1.5 x the comfortable
        deceleration), as CARLA's autopilot; an unserved stop sign holds until the vehicle has stopped at its line.

        Args:
            lane: (V,) the next junction lane ahead, -1 where none.
            distance_m: (V,) distance from the vehicle's centre to that lane's entry (the stop line) [m].
        """
        gap = distance_m - half_length_m - STOP_LINE_MARGIN_M
        safe_lane = np.maximum(lane, 0)
        sign = self.layout.sign_of_segment[safe_lane]
        stop_sign = (sign == SIGN_STOP) & ~served
        # Braking for a yellow may be firmer than comfortable: a car that goes on and then slows for its turn
        # would reach the line at red.
        yellow_decel = YELLOW_DECEL_FACTOR * np.maximum(comfort_decel_mps2, 0.1)
        can_stop = speed_mps**2 / (2.0 * yellow_decel) <= np.maximum(gap, 0.0) + 0.5
        hold_light = (light_state == RED) | ((light_state == YELLOW) & can_stop)
        hold = (lane >= 0) & ~ignores_control & (hold_light | stop_sign) & (distance_m > -0.5)
        return np.where(hold, np.maximum(gap, 0.0), np.inf)

    def serve(self, lane: np.ndarray, distance_m: np.ndarray, speed_mps: np.ndarray, half_length_m: np.ndarray,
              served_lane: np.ndarray) -> np.ndarray:
        """The stop-sign lane each vehicle has served (-1 none): stopped close to the line, kept until it enters."""
        at_line = (distance_m - half_length_m < SERVE_DISTANCE_M) & (speed_mps < STOPPED_MPS)
        stop_sign = (lane >= 0) & (self.layout.sign_of_segment[np.maximum(lane, 0)] == SIGN_STOP)
        keep = (served_lane >= 0) & (served_lane == lane)
        return np.where(stop_sign & at_line, lane, np.where(keep, served_lane, -1))

