"""CARLA Leaderboard 2.0 compatibility: drivesim policies as Leaderboard agents.

``carla_bridge.leaderboard.agent`` is an agent module for the official ``leaderboard_evaluator.py``
(``--agent .../carla_bridge/leaderboard/agent.py --agent-config policy.yaml``). The Leaderboard is not on
PyPI: its ``AutonomousAgent`` is imported when installed, else the stand-in of ``standin.py`` (same
interface, checked against the public source by the tests) is used.
"""
