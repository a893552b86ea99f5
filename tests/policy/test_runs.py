"""Older policy checkpoints' configs still load: per-step decisions kept, the old single residual bound dropped."""

from __future__ import annotations

from drivesim.policy.config import PolicyConfig
from drivesim.policy.runs import migrate_config


def test_migrate_config_of_an_older_checkpoint() -> None:
    old = PolicyConfig().model_dump(mode="json")
    old["imagination"].pop("decision_every_steps")
    for key in ("longitudinal_mps", "lateral_mps"):
        old["delta"].pop(key)
    old["delta"].update(max_delta_m=2.0, min_std=0.01, init_std=0.05)
    config = PolicyConfig.model_validate(migrate_config(old, "old.ckpt"))
    assert config.imagination.decision_every_steps == 1  # it was trained (and drives) deciding every step
    assert config.delta.min_std == 0.1 and config.delta.init_std == 0.9
    assert "max_delta_m" in old["delta"]  # the caller's dict is left alone
    current = PolicyConfig().model_dump(mode="json")
    assert PolicyConfig.model_validate(migrate_config(current)) == PolicyConfig()
