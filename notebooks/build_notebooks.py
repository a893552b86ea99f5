"""Notebooks: write ``notebooks/0*.ipynb`` from the Python source below (outputs stripped), so they review as code.

Usage: ``python notebooks/build_notebooks.py`` (rewrites the three notebooks; ``--check`` only compares).
``tests/test_notebooks.py`` fails when a committed notebook differs from what this script generates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK_DIR = Path(__file__).resolve().parent
Cell = tuple[str, str]  # ("md" | "code", source)


def md(text: str) -> Cell:
    return "md", text.strip("\n")


def code(text: str) -> Cell:
    return "code", text.strip("\n")


# ---------------------------------------------------------------------------------------------- shared cells
SETUP = code('''
import logging
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import drivesim

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # the viewer renders headless (no window)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # keep Lightning's start-up notices out of the way
torch.set_num_threads(TORCH_THREADS)
CONFIGS = Path(drivesim.__file__).resolve().parent.parent / "configs"  # the repository's configs/ folder
WORK = Path(tempfile.mkdtemp(prefix="drivesim_notebook_"))  # every output of this notebook goes here
print("configs:", CONFIGS)
print("outputs:", WORK)
''')

TOY_SIZES = '''
EPISODES = 4                    # episodes to collect; 200+ for a real run (`drivesim demo` uses 24)
ROUTE_LENGTH_M = (80, 150)      # route length range [m]; 300-600 for a real run
MAX_STEPS = 300                 # episode time limit [steps of 0.05 s]; 2000 for a real run
IMAGE_PX = 32                   # camera and BEV size [px]; configs/world_model/debug.yaml expects 32
WM_STEPS = 40                   # world-model training steps; 600+ (demo config) for a real run
BC_STEPS = 10                   # behaviour-cloning steps; 400+ for a real run
RL_STEPS = 5                    # RL (imagination) steps; 60+ for a real run
TORCH_THREADS = 1               # CPU threads for torch; raise on a free machine
'''

REAL_RUN = '''
RUN_DIR = None                  # a finished `drivesim demo --out outputs/demo` run folder, e.g. Path("outputs/demo");
                                # None builds a tiny toy run below (seconds, nearly untrained models)
'''

TOY_RUN = code('''
from drivesim.config import load_config
from drivesim.data.collect import collect
from drivesim.data.config import CollectConfig
from drivesim.policy.bc import train_bc
from drivesim.policy.config import PolicyConfig
from drivesim.policy.rl import train_rl
from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.train import train_world_model

if RUN_DIR is None:  # the same folder layout as `drivesim demo`: data/, world_model/, bc/, rl/
    RUN_DIR = WORK / "toy_run"
    collect(load_config(CollectConfig, CONFIGS / "collect" / "default.yaml", [
        f"collect.episodes={EPISODES}", f"collect.out={RUN_DIR / 'data'}", "sim.map.name=town",
        f"sim.episode.route_length_m=[{ROUTE_LENGTH_M[0]},{ROUTE_LENGTH_M[1]}]", f"sim.episode.max_steps={MAX_STEPS}",
        f"sensors.bev.size_px={IMAGE_PX}", f"sensors.camera.width_px={IMAGE_PX}", f"sensors.camera.height_px={IMAGE_PX}",
    ]))
    wm_config = load_config(WorldModelConfig, CONFIGS / "world_model" / "debug.yaml",
                            [f"train.max_steps={WM_STEPS}", f"train.val_every_steps={WM_STEPS}"])
    train_world_model(wm_config, RUN_DIR / "data", RUN_DIR / "world_model", accelerator="cpu", devices=1,
                      progress_bar=False)
    policy_config = load_config(PolicyConfig, CONFIGS / "policy" / "debug.yaml",
                                [f"bc.max_steps={BC_STEPS}", f"bc.val_every_steps={BC_STEPS}", f"rl.max_steps={RL_STEPS}"])
    train_bc(policy_config, RUN_DIR / "world_model" / "checkpoints" / "last.ckpt", RUN_DIR / "data", RUN_DIR / "bc",
             accelerator="cpu", devices=1, progress_bar=False)
    train_rl(policy_config, RUN_DIR / "bc" / "checkpoints" / "last.ckpt", RUN_DIR / "data", RUN_DIR / "rl",
             accelerator="cpu", devices=1, progress_bar=False)
RUN_DIR = Path(RUN_DIR)
DATA = RUN_DIR / "data"
WM_CKPT = RUN_DIR / "world_model" / "checkpoints" / "last.ckpt"
BC_CKPT = RUN_DIR / "bc" / "checkpoints" / "last.ckpt"
RL_CKPT = RUN_DIR / "rl" / "checkpoints" / "last.ckpt"
print("run:", RUN_DIR)
''')

LOAD_RUN_MD = md('''
## A run to look at

`RUN_DIR = None` builds a **toy run** here with the stage APIs (the same calls as `01_quickstart.ipynb`): a few short
episodes, a `debug` world model trained for a few dozen steps, BC and RL for a handful. It takes seconds and its
models are **nearly untrained**: the plots below show what the tools display, not what drivesim can learn.

For meaningful pictures, run the whole loop once from the repository root (about 15 minutes on 2 CPU cores):

```bash
drivesim demo --out outputs/demo            # collect, train-wm, eval-wm, train-bc, train-rl, eval, replay
```

then set `RUN_DIR = Path("/path/to/drivesim/outputs/demo")` in the first cell. The demo writes the same layout
(`data/`, `world_model/checkpoints/last.ckpt`, `bc/...`, `rl/...`), so every later cell works unchanged.
''')

# --------------------------------------------------------------------------------------------- 01 quickstart
QUICKSTART: list[Cell] = [
    md('''
# drivesim quickstart: the whole loop at toy size

drivesim learns a driving simulator from driving data and trains a driving policy inside it. The loop is:

1. **collect** episodes on the embedded simulator (a CARLA-compatible map, physics, traffic and an expert driver,
   no server needed) with `drivesim.data.collect.collect`;
2. train a **world model** (DreamerV3-style RSSM: camera + BEV + measurements in, latent dynamics and reward heads
   out) with `drivesim.world_model.train.train_world_model`;
3. train a **waypoint policy** on the world model's features: behaviour cloning of the expert (`train_bc`), then an
   RL residual ("delta") head in imagination (`train_rl`);
4. **evaluate** agents closed-loop on a route suite with leaderboard metrics (`drivesim.eval.runner.run_suite`);
5. **look** at episodes with the viewer (`drivesim.viewer`), here exported to a GIF.

Each step is one public function (and one CLI command: `drivesim collect`, `train-wm`, `train-bc`, `train-rl`,
`eval run`, `replay`; `drivesim demo` chains them). Everything here runs at **toy size** (well under a minute on
one CPU core): the models come out nearly untrained. The sizes are in the next cell; the comments give real-run
values. All outputs go to a fresh temporary folder, never into the repository.
'''),
    code(TOY_SIZES + '''EVAL_ROUTES = 1                 # closed-loop routes per agent; 4-20 for a real run
EVAL_ROUTE_LENGTH_M = (80.0, 150.0)  # length of the generated evaluation routes [m]; configs/routes/test.yaml: 300-1500
GIF_FRAMES = 120                # frames of the replay GIF (20 per second); None for the whole route
'''),
    SETUP,
    md('''
## 1. Collect a dataset

`CollectConfig` has three sections: `sim` (map, traffic, expert, episode limits), `sensors` (BEV and camera) and
`collect` (episode count, workers, seed, output). We load `configs/collect/default.yaml` and override keys with the
same `key=value` strings the CLI takes (`drivesim collect --config ... key=value`). Each episode is driven by the
expert with one of three driver modes (clean, noisy, careless) so that the data holds some mistakes.
'''),
    code('''
from drivesim.config import load_config
from drivesim.data.collect import collect
from drivesim.data.config import CollectConfig

DATA = WORK / "data"
collect_config = load_config(CollectConfig, CONFIGS / "collect" / "default.yaml", [
    f"collect.episodes={EPISODES}", f"collect.out={DATA}", "sim.map.name=town",
    f"sim.episode.route_length_m=[{ROUTE_LENGTH_M[0]},{ROUTE_LENGTH_M[1]}]", f"sim.episode.max_steps={MAX_STEPS}",
    f"sensors.bev.size_px={IMAGE_PX}", f"sensors.camera.width_px={IMAGE_PX}", f"sensors.camera.height_px={IMAGE_PX}",
])
summary = collect(collect_config)
summary.to_dict()
'''),
    md('''
An episode is a folder `ep_<index>/` with `meta.json` and one `.npy` per field (see `docs/dataset_format.md`).
Row `t` holds the observation `o_t`, the events and reward of arriving there, and the action applied after it.
Below: the speed trace of each episode and the controls of the first one.
'''),
    code('''
from drivesim import spec
from drivesim.data.episode import list_episodes, load_meta, read_episode

episodes = [read_episode(path) for path in list_episodes(DATA)]
speed = spec.MEASUREMENT_NAMES.index("speed_mps")
dt_s = collect_config.sim.episode.dt_s
fig, (ax_speed, ax_action) = plt.subplots(1, 2, figsize=(11, 3.2))
for path, episode in zip(list_episodes(DATA), episodes, strict=True):
    time_s = np.arange(len(episode["reward"])) * dt_s
    ax_speed.plot(time_s, episode["measurements"][:, speed], label=f"{path.name} ({load_meta(path)['driver']})")
ax_speed.set(xlabel="time [s]", ylabel="speed [m/s]", title="Speed of each episode")
ax_speed.legend(fontsize=7)
first = episodes[0]
for column, name in enumerate(("throttle", "steer", "brake")):
    ax_action.plot(np.arange(len(first["action"])) * dt_s, first["action"][:, column], label=name)
ax_action.set(xlabel="time [s]", title="Controls of episode 0")
ax_action.legend(fontsize=7)
fig.tight_layout()
print({key: value.shape for key, value in first.items()})
'''),
    md('''
## 2. Train the world model

`configs/world_model/debug.yaml` is the tiny preset (widths shrunk so a step takes milliseconds; 32 px images). The
run folder gets `config.yaml`, `checkpoints/last.ckpt`, TensorBoard logs and a CSV log, which we plot.
'''),
    code('''
import csv

from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.train import train_world_model

wm_config = load_config(WorldModelConfig, CONFIGS / "world_model" / "debug.yaml",
                        [f"train.max_steps={WM_STEPS}", f"train.val_every_steps={WM_STEPS}"])
checkpoints = train_world_model(wm_config, DATA, WORK / "world_model", accelerator="cpu", devices=1, progress_bar=False)
WM_CKPT = checkpoints / "last.ckpt"



def read_log(run_dir, column):
    """(steps, values) of one column of a run's Lightning CSV log (rows without it are skipped)."""
    with open(run_dir / "csv" / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get(column)]
    return np.array([int(row["step"]) for row in rows]), np.array([float(row[column]) for row in rows])


fig, ax = plt.subplots(figsize=(6, 3.2))
for column in ("train/loss", "train/loss/camera", "train/loss/bev"):
    ax.plot(*read_log(WORK / "world_model", column), marker=".", label=column)
ax.set(xlabel="step", ylabel="loss", yscale="log", title="World-model training loss")
ax.legend(fontsize=7)
fig.tight_layout()
'''),
    md('''
## 3. Behaviour cloning, then RL in imagination

BC trains a waypoint actor on the (frozen) world model's features to reproduce the expert's 8 future positions
(`expert_waypoints`, every 0.5 s). RL then trains a residual head on top of BC inside the world model's imagination
(DreamerV3 actor-critic; see `drivesim/policy/rl.py`). Both checkpoints hold the world model too, so a policy
checkpoint is all an evaluation needs. `configs/policy/debug.yaml` holds tiny budgets.
'''),
    code('''
from drivesim.policy.bc import train_bc
from drivesim.policy.config import PolicyConfig
from drivesim.policy.rl import train_rl

policy_config = load_config(PolicyConfig, CONFIGS / "policy" / "debug.yaml",
                            [f"bc.max_steps={BC_STEPS}", f"bc.val_every_steps={BC_STEPS}", f"rl.max_steps={RL_STEPS}"])
BC_CKPT = train_bc(policy_config, WM_CKPT, DATA, WORK / "bc", accelerator="cpu", devices=1,
                   progress_bar=False) / "last.ckpt"
RL_CKPT = train_rl(policy_config, BC_CKPT, DATA, WORK / "rl", accelerator="cpu", devices=1,
                   progress_bar=False) / "last.ckpt"
print("BC validation ADE [m]:", read_log(WORK / "bc", "val/ade_m")[1].round(3).tolist())
print("RL imagined return per step:", read_log(WORK / "rl", "train/imagined/return")[1].round(3).tolist())
'''),
    md('''
## 4. Closed-loop evaluation

A route suite is a versioned YAML list of routes (`configs/routes/dev.yaml`, `test.yaml`; 300-1500 m each). For a
quick look we generate a suite of short routes with `generate_suite` (what `drivesim eval make-suite` does) and run
the expert and the BC policy on it. The policy agent reads camera and BEV, so the evaluation renders them at the
world model's size. Results land in `OUT/results.json` and `results.md`; `record=True` also writes each route as a
dataset episode, which we replay below.
'''),
    code('''
from drivesim.eval.config import EvalConfig
from drivesim.eval.routes import generate_suite
from drivesim.eval.runner import run_suite

suite = generate_suite("toy", seed=7, maps=["town:0"], num_routes=EVAL_ROUTES, length_range_m=EVAL_ROUTE_LENGTH_M)
eval_config = load_config(EvalConfig, None, [
    f"sensors.bev.size_px={IMAGE_PX}", f"sensors.camera.width_px={IMAGE_PX}", f"sensors.camera.height_px={IMAGE_PX}",
    "route_timeout_min_s=40", "blocked_limit_s=20",  # toy limits (the Leaderboard's: 300 s and 180 s)
])
results = {}
for label, agent in (("expert", "expert"), ("BC", f"policy:{BC_CKPT}")):
    results[label] = run_suite(suite, agent, WORK / "eval" / label, eval_config, record=True, show_progress=False)
columns = ("driving_score", "route_completion", "collisions_per_km", "off_road_share", "mean_speed_mps")
print(f"{'':20}" + "".join(f"{label:>10}" for label in results))
for key in columns:
    print(f"{key:20}" + "".join(f"{result['aggregate'][key]:10.2f}" for result in results.values()))
'''),
    md('''
The expert completes its route; the toy BC policy, trained for a few steps on a few hundred frames, usually does
not. With the real run of `drivesim demo` the comparison is between the expert, BC and BC+RL on `test.yaml`.

## 5. Replay as a GIF

The viewer's `ReplayView` renders camera, BEV and a HUD (speed, controls, events, route completion) into RGB frames;
`export_video` writes them to `.gif` or `.mp4` (what `drivesim replay DATA --export replay.gif` does). Here: the BC
policy's closed-loop route, recorded by the evaluation.
'''),
    code('''
from IPython.display import Image

from drivesim.viewer.export import export_video
from drivesim.viewer.replay import EpisodeLibrary
from drivesim.viewer.views import ReplayView

view = ReplayView(EpisodeLibrary(WORK / "eval" / "BC" / "episodes"), panel_px=128, playing=False)
frames, total = view.export_frames(GIF_FRAMES)
gif = export_video(frames, WORK / "bc_route.gif", fps=20, total=total, show_progress=False)
Image(filename=str(gif.path))
'''),
    md('''
## Going bigger

- Raise the sizes in the first cell (the comments give real-run values), or run `drivesim demo --out outputs/demo`
  from the repository root: the same stages at demo size, resumable, with a summary table (about 15 min on 2 cores).
- Every stage has a CLI command with `--config FILE key=value ...`; `drivesim COMMAND --help` lists the options.
- `02_world_model.ipynb` looks inside the world model (open-loop frames, metrics, latent rollouts, calibration) and
  `03_policy_in_imagination.ipynb` compares BC with BC+RL and imagined with real returns; both can load the
  `outputs/demo` run.
'''),
]

# ------------------------------------------------------------------------------------------ 02 world model
WORLD_MODEL: list[Cell] = [
    md('''
# Inside the world model

The world model (`drivesim.world_model.model.WorldModel`) filters observations into a latent state (RSSM: a
deterministic part `h_t` and a categorical part `z_t`) and predicts the next state from an action alone (the
*prior*). Heads read `[h_t, z_t]` and predict the camera and BEV frames, the measurements, and the reward components
(progress, speed, collision, off-road, continue). This notebook shows:

1. **open-loop predictions**: observe a few real frames, then roll the prior with the recorded controls;
2. **per-horizon metrics** from `evaluate_open_loop` (what `drivesim eval-wm` writes);
3. **latent rollouts** with hand-made constant controls (throttle, brake, steer);
4. **reward-head calibration**: predicted collision / off-road probability against observed frequency.
'''),
    code(REAL_RUN + TOY_SIZES + '''CONTEXT = 8                     # observed steps before the prior takes over
HORIZON = 20                    # imagined steps (20 per second); the eval-wm default is 80
EVAL_BATCHES = 2                # held-out batches for the metrics; the demo uses 6
'''),
    SETUP,
    LOAD_RUN_MD,
    TOY_RUN,
    md('''
## 1. Open-loop predictions

`heldout_loader` gives windows of the episodes the world model's training split held out (same fraction and seed).
`open_loop(batch, context, horizon)` observes the first `CONTEXT` steps with the posterior and then imagines
`HORIZON` steps with the recorded actions, decoding frames. `open_loop_grid` tiles real frames (top row of each pair)
against predictions (bottom row; the context repeated, dimmed). Each frame is camera | BEV.
'''),
    code('''
from drivesim.world_model.evaluate import heldout_loader
from drivesim.world_model.model import load_world_model
from drivesim.world_model.train import model_fields
from drivesim.world_model.visualize import open_loop_grid

model, wm_config = load_world_model(WM_CKPT)
loader = heldout_loader(DATA, model_fields(wm_config), CONTEXT + HORIZON, batch_size=4,
                        val_fraction=wm_config.train.val_fraction, seed=wm_config.train.seed)
batch = next(iter(loader))
generator = torch.Generator().manual_seed(0)
imagination = model.open_loop(batch, CONTEXT, HORIZON, generator)
real = {key: value.numpy() for key, value in model.image_targets(batch).items()}
predicted = {key: value.float().numpy() for key, value in imagination.images.items()}
every = 2  # show every 2nd frame to keep the grid readable
grid = open_loop_grid({k: v[:2, ::every] for k, v in real.items()},
                      {k: v[:2, CONTEXT % every::every] for k, v in predicted.items()}, CONTEXT // every)
fig, ax = plt.subplots(figsize=(14, 4))
ax.imshow(grid)
ax.set_title(f"real (top) vs predicted (bottom), every {every} steps; dimmed: the {CONTEXT} observed steps")
ax.axis("off");
'''),
    md('''
## 2. Per-horizon metrics

`evaluate_open_loop` runs the same rollout over held-out batches and separates two questions: can the model *encode*
a frame (the **posterior** reconstruction, with the whole window observed) and can it *predict* it (the **prior**
rollout, from the latent mode and from samples). Both are compared with baselines: camera MSE / PSNR / SSIM against
*copy the last frame*; BEV per-channel F1 / IoU at threshold 0.5 and at the best threshold against *constant
position* and *constant velocity* (each car keeps the motion it had over the last observed steps); "collision /
off-road within 1 s" AUROC, AP and calibration error against a speed-and-distance score, with the number of positive
windows (no AUROC from fewer than 20). It writes `report.json`, PNG plots and `sample.gif`; `summary_lines` prints
what `drivesim eval-wm` prints. A useful world model beats the baselines at 0.5-2 s; a toy one does not.
'''),
    code('''
from drivesim.world_model.eval_report import summary_lines
from drivesim.world_model.evaluate import evaluate_open_loop

report = evaluate_open_loop(model, loader, CONTEXT, HORIZON, WORK / "wm_eval", max_batches=EVAL_BATCHES,
                            precision="32-true")
%matplotlib inline
# (evaluate_open_loop saves its PNGs without pyplot; the line above keeps this notebook's figures inline)
print("\\n".join(summary_lines(report)))
curves = report["curves"]
fig, ax = plt.subplots(figsize=(5, 3.2))
seconds = np.arange(1, len(curves["camera_mse_mode"]) + 1) * report["dt_s"]
ax.plot(seconds, curves["camera_mse_mode"], label="world model (mode)")
ax.plot(seconds, curves["camera_mse_sample"], label="world model (sample)")
ax.plot(seconds, curves["camera_mse_copy_last"], linestyle="--", label="copy last frame")
ax.set(xlabel="prediction horizon [s]", ylabel="camera MSE", title="Open-loop camera error")
ax.legend()
fig.tight_layout()
report["events_within_1s"]
'''),
    md('''
## 3. Latent rollouts with constant controls

`imagine(start, actions, horizon)` rolls the prior from any latent state with any controls, batched. Starting every
rollout from the same observed state, we apply four constant controls and read the speed and progress heads. A
trained model speeds up under throttle, slows to a stop under brake, and makes less progress when steering hard;
an untrained one barely reacts.
'''),
    code('''
from drivesim import spec
from drivesim.world_model.rssm import LatentState

controls = {  # [throttle, steer, brake]
    "full throttle": [1.0, 0.0, 0.0],
    "coast": [0.0, 0.0, 0.0],
    "full brake": [0.0, 0.0, 1.0],
    "throttle + steer right": [0.6, 0.8, 0.0],
}
rollout_steps = 40
with torch.no_grad():
    context = {key: value[:1, :CONTEXT] for key, value in batch.items()}
    _, _, last = model.observe(context, generator=torch.Generator().manual_seed(0))
    start = LatentState(last.deter.expand(len(controls), -1), last.stoch.expand(len(controls), -1, -1))
    actions = torch.tensor(list(controls.values())).unsqueeze(1).expand(-1, rollout_steps, -1)
    rollout = model.imagine(start, actions, rollout_steps, generator=torch.Generator().manual_seed(0), sample=False)
seconds = np.arange(1, rollout_steps + 1) * 0.05
fig, (ax_speed, ax_progress) = plt.subplots(1, 2, figsize=(11, 3.2))
for row, name in enumerate(controls):
    ax_speed.plot(seconds, rollout.components["speed"][row].numpy(), label=name)
    ax_progress.plot(seconds, np.cumsum(rollout.components["progress"][row].numpy()), label=name)
ax_speed.set(xlabel="imagined time [s]", ylabel="predicted speed [m/s]", title="Speed head")
ax_progress.set(xlabel="imagined time [s]", ylabel="cumulative progress [m]", title="Progress head")
ax_speed.legend(fontsize=7)
fig.tight_layout()
observed = float(batch["measurements"][0, CONTEXT - 1, spec.MEASUREMENT_NAMES.index("speed_mps")])
print(f"observed speed at the start: {observed:.2f} m/s")
'''),
    md('''
## 4. Reward-head calibration

The collision and off-road heads predict the probability that the event happens within the next
`heads.event_horizon_steps` steps. On the held-out windows we read the heads on the posterior states and bin their
probabilities: a calibrated head lies on the diagonal (of all states given p = 0.2, a fifth see the event). The
labels are the heads' own training targets (`make_targets`). Toy datasets hold few or no events, so the observed
frequency is mostly 0 here; the bar chart shows how many states fall in each bin.
'''),
    code('''
from drivesim.world_model.losses import make_targets

bins = np.linspace(0.0, 1.0, 11)
probabilities = {"collision": [], "off_road": []}
labels = {"collision": [], "off_road": []}
with torch.no_grad():
    for index, window in enumerate(loader):
        if index >= EVAL_BATCHES:
            break
        posterior, _, _ = model.observe(window, generator=torch.Generator().manual_seed(0), sample=False)
        components = model.predict(model.features(posterior).flatten(0, 1))["components"]
        targets = make_targets(window, wm_config.heads, model.measurement_index)
        mask = targets["event_mask"].flatten().bool()
        for name in probabilities:
            probabilities[name].append(components[name].float()[mask].numpy())
            labels[name].append(targets[name].flatten()[mask].numpy())
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for ax, name in zip(axes, probabilities, strict=True):
    p, y = np.concatenate(probabilities[name]), np.concatenate(labels[name])
    which = np.clip(np.digitize(p, bins) - 1, 0, len(bins) - 2)
    counts = np.bincount(which, minlength=len(bins) - 1)
    centres = (bins[:-1] + bins[1:]) / 2
    used = counts > 0
    mean_p = np.bincount(which, weights=p, minlength=len(bins) - 1)[used] / counts[used]
    frequency = np.bincount(which, weights=y, minlength=len(bins) - 1)[used] / counts[used]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    ax.plot(mean_p, frequency, marker="o", label="head")
    ax.bar(centres, counts / counts.sum(), width=0.09, alpha=0.25, label="share of states")
    ax.set(xlabel=f"predicted P({name})", ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1),
           title=f"{name}: {int(y.sum())} positive of {y.size} states")
    ax.legend(fontsize=7)
fig.tight_layout()
'''),
    md('''
## Next

- `drivesim eval-wm --ckpt RUN/world_model/checkpoints/last.ckpt --data RUN/data --out wm_eval` writes the same
  report from the command line; `drivesim replay RUN/data --wm CKPT` shows the dream beside reality, interactively.
- `03_policy_in_imagination.ipynb` drives a policy inside this model.
'''),
]

# ------------------------------------------------------------------------------- 03 policy in imagination
POLICY: list[Cell] = [
    md('''
# Policies in imagination

drivesim's policy outputs 8 waypoints (every 0.5 s, ego frame: x forward, y right) that a PID controller turns into
throttle / steer / brake. Behaviour cloning (BC) learns them from the expert; RL adds a bounded residual (the
*delta head*) trained inside the world model's imagination. This notebook:

1. plots **BC vs BC+RL vs expert waypoints** on the same real scenes;
2. compares **imagined with real returns**: from real start states the world model imagines the next steps, and we
   compare the predicted reward sums with the rewards recorded in the data.
'''),
    code(REAL_RUN + TOY_SIZES + '''CONTEXT = 8                     # observed steps before imagination starts
HORIZON = 16                    # imagined steps (20 per second)
SCENES = 4                      # scenes (held-out windows) to plot
'''),
    SETUP,
    LOAD_RUN_MD,
    TOY_RUN,
    md('''
## 1. BC vs BC+RL waypoints

`load_policy` reads a BC or RL checkpoint (the world model is inside it). On held-out windows, the world model filters
the `CONTEXT` real steps; the policy reads the features of the last state plus the route and speed. For BC+RL we
take the mean residual (no exploration noise), as the evaluation agent does.
'''),
    code('''
from drivesim import spec
from drivesim.policy.runs import load_policy
from drivesim.world_model.evaluate import heldout_loader
from drivesim.world_model.train import model_fields

bc, rl = load_policy(BC_CKPT), load_policy(RL_CKPT)
fields = [*model_fields(bc.world_model.config), "route", "expert_waypoints", "ego_pose", "reward"]
loader = heldout_loader(DATA, fields, CONTEXT + HORIZON, batch_size=SCENES,
                        val_fraction=bc.world_model.config.train.val_fraction, seed=bc.world_model.config.train.seed)
batch = next(iter(loader))
context = {key: value[:, :CONTEXT] for key, value in batch.items()}
speed = context["measurements"][:, -1, spec.MEASUREMENT_NAMES.index("speed_mps")]


def waypoints(loaded):
    """Mean waypoints (N, K, 2) of a loaded policy at the last context step."""
    with torch.no_grad():
        _, _, last = loaded.world_model.observe(context, generator=torch.Generator().manual_seed(0))
        inputs = loaded.policy.inputs(loaded.world_model.features(last), context["route"][:, -1], speed)
        return loaded.policy.act(inputs, sample=False)[0].numpy()


predicted = {"BC": waypoints(bc), "BC+RL": waypoints(rl)}
expert = context["expert_waypoints"][:, -1].numpy()
route = context["route"][:, -1].numpy()
fig, axes = plt.subplots(1, len(expert), figsize=(3.2 * len(expert), 3.6), squeeze=False)
for scene, ax in enumerate(axes[0]):
    ax.plot(route[scene, :, 1], route[scene, :, 0], color="lightgrey", linewidth=6, label="route")
    ax.plot(expert[scene, :, 1], expert[scene, :, 0], "k.-", label="expert")
    for (label, points), style in zip(predicted.items(), ("o--", "x-"), strict=True):
        ax.plot(points[scene, :, 1], points[scene, :, 0], style, label=label)
    ax.plot(0, 0, "g^", markersize=10)
    ax.set(xlabel="y (right) [m]", ylabel="x (forward) [m]", title=f"scene {scene}: {float(speed[scene]):.1f} m/s",
           xlim=(-10, 10))
axes[0][0].legend(fontsize=7)
fig.tight_layout()
residual = np.linalg.norm(predicted["BC+RL"] - predicted["BC"], axis=-1).mean()
print(f"mean |BC+RL - BC| per waypoint: {residual:.3f} m (the delta head starts at zero; RL moves it)")
'''),
    md('''
## 2. Imagined vs real returns

From the last context state of each window, three reward sums over the next `HORIZON` steps:

- **recorded**: the rewards in the data (`progress - 10 collision - 2 off-road`, what the driver actually got);
- **imagined, recorded controls**: the world model replays the driver's controls (`WorldModel.imagine`); close to
  the recorded sum when the reward heads and dynamics are right;
- **imagined, BC+RL policy**: `imagine_policy` drives the RL policy in the latent space (`LatentDriver`: waypoints ->
  controller -> prior step), as in RL training. It differs from the recorded sum because the policy drives differently
  from the data's driver, and because the model errs.

Points on the diagonal mean imagination agrees with reality. At toy size they do not: the untrained heads give
every state a sizeable collision probability, so imagined returns sit far below the recorded ones, and a few RL
steps leave the delta head near its zero initialisation (BC+RL = BC above). With a `drivesim demo` run the
recorded-controls points move toward the diagonal.
'''),
    code('''
from drivesim.dream.driver import LatentDriver
from drivesim.dream.rollout import imagine_policy

with torch.no_grad():
    world_model = rl.world_model
    driver = LatentDriver(world_model, rl.config.controller, rl.config.actor.waypoint_dt_s,
                          rl.config.imagination.reward_weights)
    start, _ = driver.observe_context(context, generator=torch.Generator().manual_seed(0))
    recorded_actions = batch["action"][:, CONTEXT - 1 : CONTEXT - 1 + HORIZON].float()
    replay = world_model.imagine(start.latent, recorded_actions, HORIZON, generator=torch.Generator().manual_seed(0))
    replay_reward = world_model.heads.reward(replay.components, rl.config.imagination.reward_weights)
    policy_rollout = imagine_policy(driver, rl.policy, start, HORIZON, generator=torch.Generator().manual_seed(0))

returns = {
    "recorded": batch["reward"][:, CONTEXT : CONTEXT + HORIZON].float().sum(1).numpy(),
    "imagined, recorded controls": replay_reward.sum(1).numpy(),
    "imagined, BC+RL policy": policy_rollout.reward.sum(1).numpy(),
}
fig, (ax_scatter, ax_steps) = plt.subplots(1, 2, figsize=(11, 3.8))
for label in list(returns)[1:]:
    ax_scatter.scatter(returns["recorded"], returns[label], label=label)
low = min(float(v.min()) for v in returns.values())
high = max(float(v.max()) for v in returns.values())
ax_scatter.plot([low, high], [low, high], color="grey", linestyle=":")
ax_scatter.set(xlabel=f"recorded return over {HORIZON} steps", ylabel="imagined return",
               title="Imagined vs recorded return per scene")
ax_scatter.legend(fontsize=7)
seconds = np.arange(1, HORIZON + 1) * 0.05
ax_steps.plot(seconds, batch["reward"][0, CONTEXT : CONTEXT + HORIZON].numpy(), "k.-", label="recorded")
ax_steps.plot(seconds, replay_reward[0].numpy(), label="imagined, recorded controls")
ax_steps.plot(seconds, policy_rollout.reward[0].numpy(), label="imagined, BC+RL policy")
ax_steps.set(xlabel="time after the context [s]", ylabel="reward per step", title="Scene 0, step by step")
ax_steps.legend(fontsize=7)
fig.tight_layout()
{label: np.round(values, 2).tolist() for label, values in returns.items()}
'''),
    md('''
## Next

- Drive a policy in the learned simulator as a gymnasium env: `drivesim.dream.sim.make_dreamsim(WM_CKPT, DATA)`
  (or `drivesim drive-dream CKPT --data DATA` in the pygame viewer).
- Evaluate checkpoints closed-loop on the real simulator: `drivesim eval run --agent policy:RUN/rl/checkpoints/last.ckpt
  --routes configs/routes/test.yaml sensors.bev.size_px=64 sensors.camera.width_px=64 sensors.camera.height_px=64`.
'''),
]

NOTEBOOKS: dict[str, list[Cell]] = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_world_model.ipynb": WORLD_MODEL,
    "03_policy_in_imagination.ipynb": POLICY,
}


def build(cells: list[Cell]) -> nbformat.NotebookNode:
    """A v4 notebook of ``cells`` with no outputs, execution counts or cell ids that change between builds."""
    notebook = new_notebook(
        cells=[new_markdown_cell(source) if kind == "md" else new_code_cell(source) for kind, source in cells],
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:02d}"
    return notebook


def render(name: str) -> str:
    """The text of notebook ``name`` as this script writes it."""
    return nbformat.writes(build(NOTEBOOKS[name])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Only report notebooks that differ; exit 1 if any.")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = NOTEBOOK_DIR / name
        text = render(name)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python notebooks/build_notebooks.py):", ", ".join(stale))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
