"""drivesim: a driving-focused learned simulator built on CARLA."""

__version__ = "0.1.0"
