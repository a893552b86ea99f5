"""World model stage: prediction heads on the latent features [h_t, z_t] and the reward they compose.

Heads: image decoder (camera RGB and/or BEV channels), measurement reconstruction (symlog), collision and
off-road (Bernoulli), progress [m] and speed [m/s] (symlog two-hot, zero-initialised as DreamerV3's reward
head) and continue (Bernoulli of "not terminated"). The reward is a weighted sum of the components so users
can redefine it without retraining.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from drivesim.spec import BEV_CHANNELS
from drivesim.world_model.config import EncoderConfig, HeadsConfig
from drivesim.world_model.distributions import TwoHot, symexp
from drivesim.world_model.networks import MLP, ImageDecoder, to_autocast_dtype, zero_init_

IMAGE_CHANNELS = {"camera": 3, "bev": len(BEV_CHANNELS)}
BERNOULLI_HEADS = ("collision", "off_road", "cont")
TWOHOT_HEADS = ("progress", "speed")


class ScalarHead(nn.Module):
    """MLP -> linear output: (N, F) -> (N, out_size) (logits of a Bernoulli or of the two-hot bins)."""

    def __init__(self, feature_size: int, units: int, layers: int, out_size: int, zero_init: bool) -> None:
        super().__init__()
        self.mlp = MLP(feature_size, units, layers)
        self.out = nn.Linear(units, out_size)
        if zero_init:
            zero_init_(self.out)

    def forward(self, features: Tensor) -> Tensor:
        return self.out(self.mlp(features))


class WorldModelHeads(nn.Module):
    """All heads. ``forward`` maps features (N, F) to a dict of raw outputs (logits / symlog values)."""

    def __init__(self, feature_size: int, encoder: EncoderConfig, heads: HeadsConfig) -> None:
        super().__init__()
        self.image_keys = list(encoder.image_keys)
        self.image_channels = [IMAGE_CHANNELS[key] for key in self.image_keys]
        self.twohot = TwoHot(heads.twohot_bins)
        self.reward_weights = dict(heads.reward_weights)
        units = encoder.mlp_units
        self.image = (
            ImageDecoder(
                feature_size,
                sum(self.image_channels),
                encoder.image_size_px,
                encoder.cnn_depth,
                encoder.cnn_mults,
                encoder.cnn_strided,
                encoder.cnn_norm,
                encoder.cnn_outer_norm,
            )
            if self.image_keys
            else None
        )
        self.measurements = (
            ScalarHead(
                feature_size, units, encoder.mlp_layers, len(encoder.measurement_names), zero_init=False
            )
            if encoder.measurement_names
            else None
        )
        self.scalars = nn.ModuleDict()
        for name in BERNOULLI_HEADS:
            self.scalars[name] = ScalarHead(feature_size, units, heads.layers, 1, zero_init=False)
        for name in TWOHOT_HEADS:
            self.scalars[name] = ScalarHead(
                feature_size, units, heads.layers, heads.twohot_bins, zero_init=True
            )

    def forward(self, features: Tensor, decode_images: bool = True) -> dict[str, Tensor]:
        """Raw outputs for features (N, F).

        Returns:
            ``image_logits`` (N, C_img, S, S) when images are modelled and requested; ``measurements`` (N, M)
            in symlog space; ``collision``, ``off_road``, ``cont`` logits (N,); ``progress``, ``speed``
            two-hot logits (N, K).
        """
        outputs: dict[str, Tensor] = {}
        features = to_autocast_dtype(features)
        if self.image is not None and decode_images:
            outputs["image_logits"] = self.image(features)
        if self.measurements is not None:
            outputs["measurements"] = self.measurements(features)
        for name, head in self.scalars.items():
            out = head(features)
            outputs[name] = out.squeeze(-1) if name in BERNOULLI_HEADS else out
        return outputs

    def split_images(self, image_logits: Tensor) -> dict[str, Tensor]:
        """Split stacked image logits (N, C_img, S, S) into per-key predictions in [0, 1].

        Returns:
            ``camera`` (N, S, S, 3) RGB in [0, 1] and/or ``bev`` (N, 5, S, S) channel probabilities.
        """
        images = {}
        for key, part in zip(
            self.image_keys, image_logits.float().split(self.image_channels, 1), strict=True
        ):
            probs = torch.sigmoid(part)
            images[key] = probs.permute(0, 2, 3, 1) if key == "camera" else probs
        return images

    def components(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Interpretable per-step predictions (N,): progress [m], speed [m/s], event probabilities."""
        return {
            "progress": self.twohot.decode(outputs["progress"]),
            "speed": self.twohot.decode(outputs["speed"]),
            "collision": torch.sigmoid(outputs["collision"].float()),
            "off_road": torch.sigmoid(outputs["off_road"].float()),
            "cont": torch.sigmoid(outputs["cont"].float()),
        }

    def reward(self, components: dict[str, Tensor], weights: dict[str, float] | None = None) -> Tensor:
        """Weighted sum of components (default progress - 10 collision - 2 off-road), (N,)."""
        weights = self.reward_weights if weights is None else weights
        unknown = sorted(set(weights) - set(components))
        assert not unknown, f"reward weights name unknown components {unknown}"
        total = torch.zeros_like(components["progress"])
        for name, weight in weights.items():
            total = total + weight * components[name]
        return total

    def measurement_values(self, outputs: dict[str, Tensor]) -> Tensor:
        """Measurement predictions in their own units (N, M) (symexp of the symlog outputs)."""
        return symexp(outputs["measurements"].float())
