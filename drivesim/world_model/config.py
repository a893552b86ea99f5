"""World model stage: configuration of the RSSM, its encoder/decoder, heads, losses, optimiser and training.

Defaults follow DreamerV3 (danijar/dreamerv3, dreamerv3/configs.yaml) where it has a value; departures are
stated in the field descriptions. Size presets live in ``configs/world_model/*.yaml``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from drivesim.config import Section
from drivesim.spec import BEV_CHANNELS, MEASUREMENT_NAMES

ImageKey = Literal["camera", "bev"]
Precision = Literal["bf16-mixed", "32-true", "16-mixed"]


class RSSMConfig(Section):
    """Recurrent state-space model: block-GRU deterministic state plus grouped categorical latents."""

    deter_size: int = Field(512, ge=8, description="Deterministic (GRU) state size; DreamerV3 12m: 2048.")
    hidden_size: int = Field(
        256, ge=8, description="Hidden width of the RSSM's input, prior and posterior layers."
    )
    stoch_groups: int = Field(32, ge=1, description="Number of categorical latent groups G (DreamerV3: 32).")
    stoch_classes: int = Field(32, ge=2, description="Classes per latent group C (DreamerV3 12m: 16).")
    blocks: int = Field(8, ge=1, description="Blocks of the block-diagonal GRU (DreamerV3: 8).")
    unimix: float = Field(0.01, ge=0.0, lt=1.0, description="Uniform mixture on latent probabilities (1%).")
    prior_layers: int = Field(
        2, ge=1, description="Hidden layers of the prior p(z|h) (DreamerV3 imglayers: 2)."
    )
    posterior_layers: int = Field(
        1, ge=1, description="Hidden layers of the posterior q(z|h,e) (obslayers: 1)."
    )
    norm: Literal["rms", "layer"] = Field("rms", description="Normalisation layer (DreamerV3: RMSNorm).")

    @model_validator(mode="after")
    def _check_blocks(self) -> RSSMConfig:
        if self.deter_size % self.blocks:
            raise ValueError(f"deter_size {self.deter_size} must be divisible by blocks {self.blocks}")
        return self


class EncoderConfig(Section):
    """CNN for the image inputs (concatenated along channels) and MLP for the measurement vector."""

    image_keys: list[ImageKey] = Field(
        ["camera", "bev"],
        description="Image inputs to model; all must share one resolution (stacked as channels).",
    )
    image_size_px: int = Field(
        64, ge=16, description="Image width and height [px], a multiple of 2**len(cnn_mults)."
    )
    measurement_names: list[str] = Field(
        list(MEASUREMENT_NAMES),
        description="Measurement entries fed to the encoder and reconstructed (symlog).",
    )
    cnn_depth: int = Field(16, ge=1, description="Base channel count of the CNN.")
    cnn_mults: list[int] = Field(
        [1, 2, 4, 8],
        description="Channel multipliers per stage (dreamerv3-torch: 2**i; DreamerV3: [2, 3, 4, 4]).",
    )
    cnn_strided: bool = Field(
        True,
        description="Stride-2 kernel-4 convolutions (dreamerv3-torch); False: kernel 5 + 2x2 pooling (DreamerV3).",
    )
    cnn_norm: Literal["rms", "layer"] = Field(
        "rms",
        description="Channel norm of the CNNs (DreamerV3: rms; dreamerv3-torch: layer, which has a fused CPU kernel).",
    )
    cnn_outer_norm: Literal["channel", "group", "none"] = Field(
        "channel",
        description="Norm of the full-resolution stages (the encoder's first, the decoder's last normed stage; "
        "32x32 at 64 px): channel (= cnn_norm, DreamerV3), group (GroupNorm over each image) or none (a conv "
        "bias instead). The per-pixel norm over 16 channels took 10 % of a CPU training step (benchmarks/results.md).",
    )
    mlp_units: int = Field(256, ge=1, description="Width of the measurement MLP and the heads.")
    mlp_layers: int = Field(3, ge=1, description="Layers of the measurement MLP (DreamerV3: 3).")

    @model_validator(mode="after")
    def _check(self) -> EncoderConfig:
        unknown = sorted(set(self.measurement_names) - set(MEASUREMENT_NAMES))
        if unknown:
            raise ValueError(f"unknown measurement names {unknown}; known: {list(MEASUREMENT_NAMES)}")
        if self.image_size_px % (2 ** len(self.cnn_mults)):
            raise ValueError(
                f"image_size_px {self.image_size_px} is not divisible by 2**{len(self.cnn_mults)}"
            )
        if not self.image_keys and not self.measurement_names:
            raise ValueError("the world model needs at least one image key or measurement")
        return self


class HeadsConfig(Section):
    """Prediction heads on the features [h_t, z_t] and the reward they compose."""

    layers: int = Field(2, ge=1, description="Hidden layers of each scalar head MLP.")
    twohot_bins: int = Field(255, ge=3, description="Bins of the symlog two-hot heads (DreamerV3: 255).")
    event_horizon_steps: int = Field(
        0,
        ge=0,
        description="0: collision/off-road heads predict the event at this step; k: within steps t..t+k.",
    )
    off_road_threshold: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Off-road share of the footprint at or above which a step counts as off-road.",
    )
    reward_weights: dict[Literal["progress", "collision", "off_road", "speed"], float] = Field(
        {"progress": 1.0, "collision": -10.0, "off_road": -2.0},
        description="Reward = sum of weight x component (progress [m], event probabilities, speed [m/s]).",
    )


class BevChannelWeights(Section):
    """Weight of each BEV channel's cross-entropy inside the BEV loss (names as ``drivesim.spec.BEV_CHANNELS``).

    Not in DreamerV3 (one image loss). Measured on the demo collection (24 town episodes, 64 px at 0.5 m/px):
    drivable covers 50 % of the pixels, lane markings 5.4 %, route 5.9 %, the ego 1.0 % (the same box in
    every frame), other vehicles 0.32 % (in 35 % of the frames). Summed over the 4,096 pixels, at the start of
    a ``demo`` run (output biases at the pixel means) and 40 steps later, the channels' cross-entropies were:
    drivable 2,842 -> 2,712, route 942 -> 888, lane markings 859 -> 805, ego 224 -> 218, vehicles 40-125
    (with the batch), empty channels 4; so the static layers trained the model and moving things were noise.
    The defaults turn the constant ego channel off and bring the vehicles' term (x 10) to the lane markings'
    and route's size; walkers are smaller still (x 20); traffic lights decide right of way (x 10); static
    obstacles and stop signs stay put in the world (x 5).
    """

    drivable: float = Field(1.0, ge=0.0, description="Drivable area.")
    lane_markings: float = Field(1.0, ge=0.0, description="Lane markings.")
    route: float = Field(1.0, ge=0.0, description="Route line.")
    ego: float = Field(0.0, ge=0.0, description="Ego box: the same pixels in every frame, nothing to learn.")
    vehicles: float = Field(10.0, ge=0.0, description="Other vehicles (0.3 % of the pixels).")
    walkers: float = Field(20.0, ge=0.0, description="Walkers (pedestrians), a few pixels each.")
    obstacles: float = Field(5.0, ge=0.0, description="Static props: cones, barriers, warning triangles.")
    traffic_light_red: float = Field(10.0, ge=0.0, description="Stop lines of lanes whose light is red.")
    traffic_light_yellow: float = Field(10.0, ge=0.0, description="Stop lines of lanes whose light is yellow.")
    traffic_light_green: float = Field(10.0, ge=0.0, description="Stop lines of lanes whose light is green.")
    stop_signs: float = Field(5.0, ge=0.0, description="Stop lines of lanes controlled by a stop sign.")

    def as_list(self) -> list[float]:
        """Weights in ``drivesim.spec.BEV_CHANNELS`` order."""
        return [getattr(self, name) for name in BEV_CHANNELS]


assert set(BevChannelWeights.model_fields) == set(BEV_CHANNELS), "BevChannelWeights must name every BEV channel"


class LossConfig(Section):
    """Loss scales (DreamerV3: rec 1, rew 1, con 1, dyn 1, rep 0.1) and free bits.

    DreamerV3 scales every reconstruction by 1; here the camera and the BEV have a scale each and the BEV one
    weight per channel, because their summed losses differ by an order of magnitude (measured figures in the
    presets' comments). The KL balance (dyn 1, rep 0.1), free bits and symlog two-hot heads are DreamerV3's.
    """

    camera: float = Field(1.0, ge=0.0, description="Camera reconstruction (MSE summed over pixels and RGB).")
    bev: float = Field(
        0.1,
        ge=0.0,
        description="BEV reconstruction (per-channel weighted cross-entropy summed over pixels). DreamerV3: 1; "
        "0.1 because the weighted BEV sum measured 11 x the camera's (5,560 vs 503 nats at the start of a demo "
        "run, 64 px), which left the camera, the input PSNR is judged on, a tenth of the image gradient: in "
        "60 demo steps the camera loss fell from 503 to 490 at scale 1 and from 502 to 348 at 0.1.",
    )
    bev_channels: BevChannelWeights = Field(
        default_factory=BevChannelWeights, description="Per-channel weights inside the BEV loss."
    )
    measurements: float = Field(1.0, ge=0.0, description="Measurement reconstruction (symlog MSE, summed).")
    collision: float = Field(1.0, ge=0.0, description="Collision head (Bernoulli).")
    off_road: float = Field(1.0, ge=0.0, description="Off-road head (Bernoulli).")
    progress: float = Field(
        1.0, ge=0.0, description="Progress head (two-hot), the reward scale of DreamerV3."
    )
    speed: float = Field(1.0, ge=0.0, description="Speed head (two-hot).")
    cont: float = Field(1.0, ge=0.0, description="Continue head (Bernoulli of not terminated).")
    dyn: float = Field(1.0, ge=0.0, description="Dynamics KL, KL(sg(post) || prior).")
    rep: float = Field(0.1, ge=0.0, description="Representation KL, KL(post || sg(prior)).")
    free_nats: float = Field(1.0, ge=0.0, description="Free bits per step on each KL [nats].")
    image_frame_share: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Share of a training batch's B x T frames decoded for the image losses, drawn at random "
        "each step: the mean over them is an unbiased estimate of the mean over all frames (validation decodes "
        "all). 1: every frame (DreamerV3). The decoder is the most expensive part of a CPU training step.",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_image_scale(cls, data: Any) -> Any:
        """Checkpoints before the per-input scales hold one ``image`` scale for camera and BEV (and no weights)."""
        if isinstance(data, dict) and "image" in data:
            data = dict(data)
            scale = data.pop("image")
            data.setdefault("camera", scale)
            data.setdefault("bev", scale)
            data.setdefault("bev_channels", {name: 1.0 for name in BEV_CHANNELS})
        return data


class OptimConfig(Section):
    """Optimiser: LaProp (DreamerV3) or Adam, with adaptive gradient clipping and linear warm-up."""

    name: Literal["laprop", "adam"] = Field("laprop", description="Update rule.")
    lr: float = Field(
        1e-4,
        gt=0.0,
        description="Learning rate. DreamerV3: 4e-5; we default higher (dreamerv3-torch: 1e-4) for short runs.",
    )
    beta1: float = Field(0.9, ge=0.0, lt=1.0, description="Momentum rate.")
    beta2: float = Field(0.999, ge=0.0, lt=1.0, description="Second-moment rate.")
    eps: float = Field(
        1e-20, gt=0.0, description="Denominator epsilon (DreamerV3 LaProp: 1e-20; use 1e-8 for Adam)."
    )
    agc: float = Field(0.3, ge=0.0, description="Adaptive gradient clipping ratio; 0 disables.")
    agc_min_norm: float = Field(1e-3, gt=0.0, description="Lower bound on the parameter norm used by AGC.")
    warmup_steps: int = Field(1000, ge=0, description="Linear learning-rate warm-up [steps].")
    weight_decay: float = Field(0.0, ge=0.0, description="Decoupled weight decay (DreamerV3: 0).")


class TrainConfig(Section):
    """Training loop (Lightning)."""

    batch_size: int = Field(16, ge=1, description="Sequences per batch (DreamerV3: 16).")
    window_steps: int = Field(64, ge=2, description="Sequence length (DreamerV3: 64).")
    max_steps: int = Field(20000, ge=1, description="Optimiser steps budget.")
    val_every_steps: int = Field(1000, ge=1, description="Validation interval [steps].")
    val_batches: int = Field(20, ge=1, description="Validation batches per validation run.")
    precision: Precision = Field("bf16-mixed", description="Lightning precision (bf16-mixed on CPU and GPU).")
    compile: bool = Field(
        False,
        description="torch.compile the RSSM's per-step functions (CUDA graphs on a GPU); the first steps pay "
        "the compile time (about a minute on 2 CPU cores).",
    )
    compile_cnns: bool = Field(
        False,
        description="With compile: also torch.compile the CNN encoder and decoder (measured slower on CPU; "
        "for GPUs).",
    )
    seed: int = Field(0, description="Seed of Lightning, the data split and latent sampling.")
    num_workers: int = Field(2, ge=0, description="Data loader workers.")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of episodes held out for validation.")
    random_offsets: bool = Field(
        True,
        description="Cut the training windows at a new random offset per episode every epoch (False: the same "
        "non-overlapping cuts every epoch). DreamerV3's replay also samples chunk starts anywhere.",
    )
    oversample_events: float = Field(
        0.0, ge=0.0, description="Extra sampling weight of windows with a collision or off-road step."
    )
    oversample_road_users: float = Field(
        0.0,
        ge=0.0,
        description="Extra sampling weight x the share of a window's steps whose BEV shows another road user "
        "(vehicles or walkers). DreamerV3 replays uniformly; here most frames hold no other road user.",
    )
    log_every_steps: int = Field(50, ge=1, description="Scalar logging interval [steps].")
    image_log_every_steps: int = Field(
        1000, ge=0, description="Open-loop image grid interval [steps]; 0 disables."
    )
    image_log_context_steps: int = Field(8, ge=1, description="Context frames of the logged open-loop grid.")


class WorldModelConfig(Section):
    """The whole world-model section; a size preset is a YAML file of these keys."""

    rssm: RSSMConfig = RSSMConfig()
    encoder: EncoderConfig = EncoderConfig()
    heads: HeadsConfig = HeadsConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
