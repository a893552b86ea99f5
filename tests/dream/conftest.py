"""Fixtures of the dream tests: the policy tests' tiny random world model, policy config and synthetic dataset."""

from tests.policy.conftest import (  # noqa: F401
    dataset,
    policy_config,
    single_thread,
    wm_checkpoint,
    wm_config,
    world_model,
)
