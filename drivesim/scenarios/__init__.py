"""Scenarios stage: ScenarioRunner-style situations scripted along a route (see drivesim/scenarios/spec.py)."""
