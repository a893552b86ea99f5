"""The ``policy:PATH`` eval agent (non-privileged keys, recurrent posterior) and the policy CLI commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from drivesim import spec
from drivesim.dream.context import ContextSource
from drivesim.dream.sim import DreamSimEnv
from drivesim.eval.agents import ControlAdapter, make_agent
from drivesim.eval.config import EvalConfig
from drivesim.policy.bc import BCModule
from drivesim.policy.config import PolicyConfig
from drivesim.world_model.model import WorldModel
from drivesim.world_model.train import model_fields

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bc_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, world_model: WorldModel, policy_config: PolicyConfig
) -> Path:
    module = BCModule(policy_config.model_dump(mode="json"), world_model.config.model_dump(mode="json"))
    module.world_model.load_state_dict(world_model.state_dict())
    path = tmp_path_factory.mktemp("bc") / "bc.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def test_policy_agent_drives_dreamsim(
    bc_checkpoint: Path, dataset: Path, world_model: WorldModel, policy_config: PolicyConfig
) -> None:
    config = EvalConfig()
    agent = make_agent(f"policy:{bc_checkpoint}", config)
    assert set(agent.observation_keys) == {
        spec.OBS_MEASUREMENTS,
        spec.OBS_ROUTE,
        spec.OBS_CAMERA,
        spec.OBS_BEV,
    }
    assert not agent.privileged and set(agent.observation_keys) <= set(config.allowed_observation_keys)
    contexts = ContextSource(
        dataset, model_fields(world_model.config), policy_config.dreamsim.context_steps, val_only=False
    )
    env = DreamSimEnv(world_model, contexts, policy_config.dreamsim)
    adapter = ControlAdapter(config.sim)
    observation, _ = env.reset(seed=0)
    agent.reset(None)
    every = policy_config.imagination.decision_every_steps
    assert agent.decision_every == every == 2
    answers = []
    for _ in range(4):
        answer = agent.act({key: observation[key] for key in agent.observation_keys})
        assert answer.shape == (8, 2) and answer.dtype == np.float32
        answers.append(answer)
        control = adapter(answer, float(observation[spec.OBS_MEASUREMENTS][0]))
        np.testing.assert_allclose(agent.previous_action, control, atol=1e-4)  # fed back as a_{t-1}
        observation, _, terminated, truncated, _ = env.step(control)
        if terminated or truncated:
            break
    np.testing.assert_array_equal(answers[1], answers[0])  # a decision is held for `every` steps
    if len(answers) > 2:
        assert not np.array_equal(answers[2], answers[0])  # then the policy decides again
    with pytest.raises(ValueError, match="px"):
        agent.act({**observation, spec.OBS_CAMERA: np.zeros((64, 64, 3), np.uint8)})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "drivesim.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )


def test_cli_train_bc_rl_and_bench(dataset: Path, wm_checkpoint: Path, tmp_path: Path) -> None:
    debug = str(REPO / "configs" / "policy" / "debug.yaml")
    common = ["--accelerator", "cpu", "--devices", "1", "--no-progress", "--config", debug]
    result = run_cli(
        "train-bc",
        "--wm",
        str(wm_checkpoint),
        "--data",
        str(dataset),
        "--out",
        str(tmp_path / "bc"),
        *common,
        "bc.max_steps=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    bc = tmp_path / "bc" / "checkpoints" / "last.ckpt"
    assert bc.is_file()
    result = run_cli(
        "train-rl",
        "--bc",
        str(bc),
        "--data",
        str(dataset),
        "--out",
        str(tmp_path / "rl"),
        *common,
        "rl.max_steps=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "rl" / "checkpoints" / "last.ckpt").is_file()
    result = run_cli(
        "bench",
        "dreamsim",
        "--wm",
        str(wm_checkpoint),
        "--batch-sizes",
        "1,4",
        "--steps",
        "2",
        "--precision",
        "32-true",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report["steps_per_s"]) == {"1", "4"} and all(v > 0 for v in report["steps_per_s"].values())


def test_cli_missing_checkpoint_fails_cleanly(dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from drivesim.cli.main import app

    result = CliRunner().invoke(
        app, ["train-bc", "--wm", str(tmp_path / "missing.ckpt"), "--data", str(dataset)]
    )
    assert result.exit_code == 1 and "not found" in result.output
