"""World model stage: the WorldModel module (encoder + RSSM + heads), its losses, imagination and loading.

No Lightning here: ``drivesim.world_model.lightning_module`` wires this module into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from drivesim.spec import BEV_CHANNELS, MEASUREMENT_NAMES
from drivesim.world_model.config import WorldModelConfig
from drivesim.world_model.distributions import symlog
from drivesim.world_model.heads import IMAGE_CHANNELS, WorldModelHeads
from drivesim.world_model.losses import head_losses, image_losses, kl_losses, make_targets, total_loss
from drivesim.world_model.networks import MLP, ImageEncoder
from drivesim.world_model.rssm import RSSM, LatentState, Policy


@dataclass
class Imagination:
    """An imagined rollout of H steps for B start states (see ``WorldModel.imagine``).

    Attributes:
        states: s_1..s_H, deter (B, H, D) and stoch (B, H, G, C).
        features: (B, H, F) [h, z] of those states.
        actions: (B, H, 3) a_0..a_{H-1}; a_t is applied in s_t (s_0 the start state).
        components: per-step predictions (B, H): ``progress`` [m], ``speed`` [m/s], ``collision``,
            ``off_road`` and ``cont`` probabilities, each for arriving at s_{t+1}.
        reward: (B, H) weighted sum of the components.
        measurements: (B, H, M) predicted measurement vector (or None when not modelled).
        images: ``camera`` (B, H, S, S, 3) in [0, 1] and/or ``bev`` (B, H, 5, S, S) probabilities, when requested.
    """

    states: LatentState
    features: Tensor
    actions: Tensor
    components: dict[str, Tensor]
    reward: Tensor
    measurements: Tensor | None
    images: dict[str, Tensor] | None


def shift_actions(action: Tensor, is_first: Tensor) -> Tensor:
    """a_{t-1} for each row t of (B, T, 3) actions; zero at t = 0 and where ``is_first`` (B, T)."""
    previous = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
    return previous * (~is_first.bool()).unsqueeze(-1).to(previous.dtype)


class WorldModel(nn.Module):
    """DreamerV3-style world model for driving.

    Attributes:
        feature_size: size F of the features [h_t, z_t] that heads and policies read.
        config: the resolved ``WorldModelConfig``.
    """

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        enc = config.encoder
        self.image_keys = list(enc.image_keys)
        self.measurement_index = [MEASUREMENT_NAMES.index(name) for name in enc.measurement_names]
        embed_size = 0
        self.image_encoder: ImageEncoder | None = None
        if self.image_keys:
            channels = sum(IMAGE_CHANNELS[key] for key in self.image_keys)
            self.image_encoder = ImageEncoder(
                channels, enc.image_size_px, enc.cnn_depth, enc.cnn_mults, enc.cnn_strided, enc.cnn_norm,
                enc.cnn_outer_norm,
            )
            embed_size += self.image_encoder.embed_size
        self.measurement_encoder: MLP | None = None
        if self.measurement_index:
            self.measurement_encoder = MLP(
                len(self.measurement_index), enc.mlp_units, enc.mlp_layers, config.rssm.norm
            )
            embed_size += enc.mlp_units
        self.embed_size = embed_size
        self.rssm = RSSM(config.rssm, embed_size)
        self.feature_size = self.rssm.feature_size
        self.heads = WorldModelHeads(self.feature_size, enc, config.heads)
        weights = torch.tensor(config.loss.bev_channels.as_list(), dtype=torch.float32)
        self.register_buffer("bev_channel_weights", weights, persistent=False)

    # ----------------------------------------------------------------------------------- inputs
    def image_targets(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Images of a (B, T) batch as floats: ``camera`` (B, T, S, S, 3) in [0, 1], ``bev`` (B, T, 5, S, S)."""
        targets = {}
        for key in self.image_keys:
            assert key in batch, (
                f"the world model is configured for image key {key!r}, missing from the batch"
            )
            targets[key] = batch[key].float() / 255.0 if key == "camera" else batch[key].float()
        return targets

    def embed(self, batch: dict[str, Tensor], images: dict[str, Tensor] | None = None) -> Tensor:
        """Encoder embeddings e_t, (B, T, E); ``images`` reuses ``image_targets(batch)`` when given."""
        batch_size, steps = batch["measurements"].shape[:2]
        parts = []
        if self.image_encoder is not None:
            stack = []
            for key, value in (images or self.image_targets(batch)).items():
                stack.append(value.permute(0, 1, 4, 2, 3) if key == "camera" else value)
            stacked = torch.cat(stack, 2).flatten(0, 1) - 0.5  # (B*T, C, S, S) in [-0.5, 0.5]
            parts.append(self.image_encoder(stacked))
        if self.measurement_encoder is not None:
            values = symlog(batch["measurements"][..., self.measurement_index].float())
            parts.append(self.measurement_encoder(values.flatten(0, 1)))
        embed = torch.cat([part.to(parts[0].dtype) for part in parts], -1)
        return embed.reshape(batch_size, steps, -1)

    # ------------------------------------------------------------------------------------- latents
    def initial(self, batch_size: int, device: torch.device | str = "cpu") -> LatentState:
        """Zero latent state for ``batch_size`` sequences."""
        return self.rssm.initial(batch_size, device)

    def observe(
        self,
        batch: dict[str, Tensor],
        state: LatentState | None = None,
        generator: torch.Generator | None = None,
        sample: bool = True,
        embed: Tensor | None = None,
    ) -> tuple[LatentState, Tensor, LatentState]:
        """Posterior states for a batch (B, T, ...) with its ``action`` (applied after o_t) and ``is_first``.

        The RSSM at row t is driven by a_{t-1} (shifted here; zero at episode starts). ``embed`` (B, T, E)
        skips the encoder when already computed. Returns the posterior states (B, T, ...), their
        log-probabilities (B, T, G, C) and the last state (carry).
        """
        embed = self.embed(batch) if embed is None else embed
        prev_action = shift_actions(batch["action"].float(), batch["is_first"])
        return self.rssm.observe(embed, prev_action, batch["is_first"], state, generator, sample)

    def img_step(
        self,
        state: LatentState,
        action: Tensor,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> LatentState:
        """One prior step: state (B, ...) and action (B, 3) -> next state."""
        return self.rssm.img_step(state, action, generator, sample)

    def features(self, state: LatentState) -> Tensor:
        """Features [h, z] (..., F) of a state."""
        return self.rssm.features(state)

    # ------------------------------------------------------------------------------------- training
    def loss(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor], LatentState]:
        """World-model loss of a (B, T) batch.

        Returns:
            The scalar loss, a dict of metrics (mean loss terms, ``kl``, entropies) and the posterior states.
        """
        images = self.image_targets(batch)
        embed = self.embed(batch, images)
        posterior, post_log_probs, _ = self.observe(batch, generator=generator, embed=embed)
        prior_log_probs = self.rssm.prior_log_probs(posterior.deter)
        kl = kl_losses(post_log_probs, prior_log_probs, self.config.loss.free_nats)
        features = self.features(posterior).flatten(0, 1)
        outputs = self.heads(features, decode_images=False)
        targets = {
            k: v.flatten(0, 1)
            for k, v in make_targets(batch, self.config.heads, self.measurement_index).items()
        }
        terms = head_losses(outputs, targets, self.heads.twohot)
        if self.heads.image is not None:
            rows = self.image_rows(features.shape[0], generator)
            terms.update(self._image_terms(features[rows], {k: v.flatten(0, 1)[rows] for k, v in images.items()}))
        per_channel = terms.pop("bev_channels", None)
        terms["dyn"], terms["rep"] = kl["dyn"], kl["rep"]
        loss, means = total_loss(terms, self.config.loss)
        metrics = {f"loss/{name}": value for name, value in means.items()}
        if per_channel is not None:  # unweighted, to measure what each channel contributes
            for name, value in zip(BEV_CHANNELS, per_channel.float().mean(0), strict=True):
                metrics[f"loss_bev/{name}"] = value
        for name in ("kl", "prior_entropy", "post_entropy"):
            metrics[f"latent/{name}"] = kl[name].mean()
        return loss, metrics, posterior

    def image_rows(self, frames: int, generator: torch.Generator | None = None) -> slice | Tensor:
        """The frames (rows of the flattened B x T batch) decoded for the image losses.

        All frames in eval mode or with ``loss.image_frame_share`` 1; otherwise a random subset of that share
        (at least one frame), sorted, drawn anew each call: the mean loss over it is an unbiased estimate of
        the mean over all frames.
        """
        share = self.config.loss.image_frame_share
        if not self.training or share >= 1.0:
            return slice(None)
        count = max(1, round(share * frames))
        device = generator.device if generator is not None else torch.device("cpu")
        rows = torch.randperm(frames, generator=generator, device=device)[:count].sort().values
        return rows.to(self.bev_channel_weights.device)

    def _image_terms(self, features: Tensor, targets: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-frame image losses (N,) of decoded ``features`` (N, F) against image ``targets`` (N, ...)."""
        assert self.heads.image is not None
        image_logits = self.heads.image(features)
        predictions = self.heads.split_images(image_logits)
        if "bev" in predictions:
            index = self.image_keys.index("bev")
            start = sum(IMAGE_CHANNELS[key] for key in self.image_keys[:index])
            predictions["bev_logits"] = image_logits[:, start : start + IMAGE_CHANNELS["bev"]]
        return image_losses(predictions, targets, self.bev_channel_weights)

    @torch.no_grad()
    def init_output_biases(self, batch: dict[str, Tensor], floor: float = 1e-3) -> list[float]:
        """Start the image decoder's per-channel output logits at the batch's mean pixel values.

        Camera colours start at the logit of their mean; each BEV channel at the logit of its share of set
        pixels (clipped to [floor, 1 - floor]). Not in DreamerV3: with a zero bias every BEV pixel starts at
        p = 0.5 (0.69 nats, 2,839 per 64 px channel) and LaProp moves a bias by about the learning rate per
        step, so a short run would spend its first thousands of steps learning that most pixels are empty
        (measured on the demo preset: 2,500 nats per empty channel after 50 steps).

        Returns:
            The initial probabilities, in the decoder's channel order.
        """
        if self.heads.image is None:
            return []
        means = []
        for key, value in self.image_targets(batch).items():
            axes = (0, 1, 2, 3) if key == "camera" else (0, 1, 3, 4)  # camera (B, T, S, S, 3); bev (B, T, C, S, S)
            means.append(value.float().mean(axes))
        probs = torch.cat(means).clamp(floor, 1.0 - floor)
        bias = self.heads.image.output_bias
        bias.copy_(torch.logit(probs).to(bias.dtype))
        return probs.tolist()

    # ---------------------------------------------------------------------------------- predictions
    def predict(self, features: Tensor, decode_images: bool = False) -> dict[str, Any]:
        """Head predictions for features (N, F): ``components``, ``reward``, ``measurements``, ``images``."""
        outputs = self.heads(features, decode_images=decode_images)
        components = self.heads.components(outputs)
        return {
            "components": components,
            "reward": self.heads.reward(components),
            "measurements": self.heads.measurement_values(outputs) if "measurements" in outputs else None,
            "images": self.heads.split_images(outputs["image_logits"]) if "image_logits" in outputs else None,
        }

    def imagine(
        self,
        start: LatentState,
        actions_or_policy: Tensor | Policy,
        horizon: int,
        decode_images: bool = False,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> Imagination:
        """Imagine H steps from B start states, batched (the loop runs over time only).

        Args:
            start: deter (B, D), stoch (B, G, C), e.g. the last state of ``observe`` or ``img_step``.
            actions_or_policy: (B, >=H, 3) controls or ``policy(features (B, F), state) -> (B, 3)``.
            horizon: H.
            decode_images: also decode frames (costly: one decoder pass per imagined step).
            generator: optional generator; the same seed gives the same rollout.
            sample: sample latents from the prior (True) or take its mode.

        Returns:
            An ``Imagination`` with states, features, actions, reward components, reward and (optionally) images.
        """
        states, actions = self.rssm.imagine(start, actions_or_policy, horizon, generator, sample)
        features = self.features(states)
        batch, steps = features.shape[:2]
        prediction = self.predict(features.flatten(0, 1), decode_images)

        def unflatten(x: Tensor) -> Tensor:
            return x.reshape(batch, steps, *x.shape[1:])

        images = prediction["images"]
        return Imagination(
            states=states,
            features=features,
            actions=actions,
            components={k: unflatten(v) for k, v in prediction["components"].items()},
            reward=unflatten(prediction["reward"]),
            measurements=None
            if prediction["measurements"] is None
            else unflatten(prediction["measurements"]),
            images=None if images is None else {k: unflatten(v) for k, v in images.items()},
        )

    @torch.no_grad()
    def open_loop(
        self,
        batch: dict[str, Tensor],
        context: int,
        horizon: int,
        generator: torch.Generator | None = None,
        decode_images: bool = True,
        sample: bool = True,
    ) -> Imagination:
        """Observe ``context`` steps, then roll the prior with the recorded controls for ``horizon`` steps.

        The prediction at imagined step j (0-based) is for row ``context + j`` of the batch. ``sample``
        samples the latents (posterior and prior); False takes their modes.
        """
        steps = batch["action"].shape[1]
        assert steps >= context + horizon, f"window of {steps} steps < context {context} + horizon {horizon}"
        context_batch = {k: v[:, :context] for k, v in batch.items()}
        _, _, last = self.observe(context_batch, generator=generator, sample=sample)
        actions = batch["action"][:, context - 1 : context - 1 + horizon].float()
        return self.imagine(last, actions, horizon, decode_images, generator, sample)

    def compile_modules(self, cnns: bool = False, device: torch.device | str = "cpu") -> None:
        """torch.compile the RSSM's per-step functions and, with ``cnns``, the image encoder and decoder.

        On CUDA the step functions record CUDA graphs (``mode="reduce-overhead"``): at training batch sizes
        the time loop is bound by kernel launches. On CPU the CNNs measured slower compiled (inductor's
        per-pixel norm over 16 channels), so ``cnns`` is off by default. The first steps pay the compile time.
        """
        cuda = torch.device(device).type == "cuda"
        self.rssm.compile_steps(mode="reduce-overhead" if cuda else None)
        if not cnns:
            return
        if self.image_encoder is not None:
            self.image_encoder = torch.compile(self.image_encoder)  # type: ignore[assignment]
        if self.heads.image is not None:
            self.heads.image = torch.compile(self.heads.image)  # type: ignore[assignment]


def load_world_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[WorldModel, WorldModelConfig]:
    """Load a world model from a Lightning checkpoint (or a ``{"config", "state_dict"}`` file).

    The file is read with ``torch.load(..., weights_only=True)``: the config is stored as a plain dict.
    """
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if "hyper_parameters" in payload:
        config_dict = payload["hyper_parameters"]["config"]
        prefix = "model."
        state_dict = {k[len(prefix) :]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)}
    else:
        config_dict, state_dict = payload["config"], payload["state_dict"]
    config = WorldModelConfig.model_validate(config_dict)
    model = WorldModel(config)
    state_dict = {k.replace("._orig_mod", ""): v for k, v in state_dict.items()}
    model.load_state_dict(state_dict)
    model.eval()
    return model, config
