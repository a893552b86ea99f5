"""Policy stage: waypoint actor (BC), RL delta head in imagination, DreamSim (the learned simulator)."""
