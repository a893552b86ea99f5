"""World model stage: building blocks (norms, MLPs, block-diagonal linear layers, CNN encoder and decoder).

Shapes follow PyTorch's NCHW for images; the CNNs run in ``channels_last`` memory format, which is what
oneDNN's bf16 kernels prefer on CPU.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORM_EPS = 1e-4  # DreamerV3 embodied/jax/nets.py Norm


def to_autocast_dtype(x: Tensor) -> Tensor:
    """``x`` in the autocast dtype when autocast is on for its device (one cast for several layers that read
    it, instead of one per layer), else unchanged."""
    device = x.device.type
    if torch.is_autocast_enabled(device) and x.is_floating_point():
        return x.to(torch.get_autocast_dtype(device))
    return x


class Norm(nn.Module):
    """RMSNorm (DreamerV3's default) or LayerNorm over the last dimension, with a learned scale.

    The scale is cast to the input's dtype so that bf16 autocast keeps the fused kernels (a float32 weight
    on bf16 input makes ``rms_norm`` fall back to a slow composite).
    """

    def __init__(self, kind: Literal["rms", "layer"], size: int) -> None:
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size)) if kind == "layer" else None

    def forward(self, x: Tensor) -> Tensor:
        shape = (x.shape[-1],)
        if self.kind == "rms":
            return F.rms_norm(x, shape, self.weight.to(x.dtype), NORM_EPS)
        return F.layer_norm(x, shape, self.weight.to(x.dtype), self.bias.to(x.dtype), NORM_EPS)


def make_norm(kind: Literal["rms", "layer"], size: int) -> Norm:
    """A ``Norm`` over the last dimension of size ``size``."""
    return Norm(kind, size)


class DenseBlock(nn.Module):
    """Linear (no bias, as DreamerV3 before a norm) -> norm -> SiLU, on (..., in_size)."""

    def __init__(self, in_size: int, out_size: int, norm: Literal["rms", "layer"] = "rms") -> None:
        super().__init__()
        self.linear = nn.Linear(in_size, out_size, bias=False)
        self.norm = make_norm(norm, out_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(self.norm(self.linear(x)))


class MLP(nn.Sequential):
    """A stack of ``DenseBlock``s: (..., in_size) -> (..., units)."""

    def __init__(self, in_size: int, units: int, layers: int, norm: Literal["rms", "layer"] = "rms") -> None:
        sizes = [in_size] + [units] * layers
        super().__init__(*(DenseBlock(a, b, norm) for a, b in zip(sizes[:-1], sizes[1:], strict=True)))
        self.out_size = units


class BlockLinear(nn.Module):
    """Block-diagonal linear layer: G independent linear maps, one per block (DreamerV3 nets.BlockLinear).

    Input (B, G * in_per_block) is viewed as G blocks; output is (B, G * out_per_block).
    """

    def __init__(self, in_size: int, out_size: int, blocks: int, bias: bool = True) -> None:
        super().__init__()
        assert in_size % blocks == 0 and out_size % blocks == 0, (in_size, out_size, blocks)
        self.blocks = blocks
        self.weight = nn.Parameter(torch.empty(blocks, in_size // blocks, out_size // blocks))
        self.bias = nn.Parameter(torch.zeros(out_size)) if bias else None
        bound = 1.0 / math.sqrt(in_size // blocks)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        grouped = x.reshape(batch, self.blocks, -1).transpose(0, 1)  # (G, B, in/G)
        # Under autocast, bmm casts the weight itself, once per autocast region (an explicit cast would run,
        # and be differentiated, at every step of a time loop).
        weight = self.weight if torch.is_autocast_enabled(x.device.type) else self.weight.to(grouped.dtype)
        out = torch.bmm(grouped, weight).transpose(0, 1).reshape(batch, -1)
        return out if self.bias is None else out + self.bias.to(out.dtype)


class ChannelNorm(nn.Module):
    """Norm over the channels of (N, C, H, W) at each pixel (DreamerV3 normalises the last axis of NHWC)."""

    def __init__(self, kind: Literal["rms", "layer"], channels: int) -> None:
        super().__init__()
        self.norm = make_norm(kind, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


OuterNorm = Literal["channel", "group", "none"]


def stage_norm(kind: Literal["rms", "layer", "group", "none"], channels: int) -> nn.Module:
    """The norm of one CNN stage: per-pixel channel norm (rms / layer), GroupNorm(1) or none (Identity).

    GroupNorm(1, C) normalises each image over (C, H, W); Identity keeps the stage's layer indices (and so
    the state-dict keys of later stages) unchanged.
    """
    if kind == "group":
        return nn.GroupNorm(1, channels, eps=NORM_EPS)
    if kind == "none":
        return nn.Identity()
    return ChannelNorm(kind, channels)


def _outer_kind(norm: Literal["rms", "layer"], outer: OuterNorm) -> Literal["rms", "layer", "group", "none"]:
    return norm if outer == "channel" else outer


def _conv_stage(conv: nn.Module, channels: int, norm: Literal["rms", "layer", "group", "none"]) -> list[nn.Module]:
    return [conv, stage_norm(norm, channels), nn.SiLU()]


class ImageEncoder(nn.Module):
    """CNN from (N, C_in, S, S) images in [-0.5, 0.5] to a flat embedding (N, embed_size).

    Args:
        in_channels: stacked image channels.
        size_px: input width and height S.
        depth: base channel count; stage i has depth * mults[i] channels.
        mults: channel multipliers, one per halving of the resolution.
        strided: stride-2 kernel-4 convolutions (dreamerv3-torch) or kernel-5 + max-pool (DreamerV3).
        norm: channel norm kind.
        outer_norm: norm of the first (full-resolution) stage: ``channel`` (= ``norm``), ``group`` or ``none``
            (the convolution then has a bias).
    """

    def __init__(
        self,
        in_channels: int,
        size_px: int,
        depth: int,
        mults: list[int],
        strided: bool = True,
        norm: Literal["rms", "layer"] = "rms",
        outer_norm: OuterNorm = "channel",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for index, mult in enumerate(mults):
            out = depth * mult
            kind = _outer_kind(norm, outer_norm) if index == 0 else norm
            bias = kind == "none"
            if strided:
                layers += _conv_stage(nn.Conv2d(channels, out, 4, 2, 1, bias=bias), out, kind)
            else:
                layers += _conv_stage(nn.Conv2d(channels, out, 5, 1, 2, bias=bias), out, kind)
                layers.insert(len(layers) - 2, nn.MaxPool2d(2))  # pool before the norm, as DreamerV3
            channels = out
        self.layers = nn.Sequential(*layers)
        self.min_res = size_px // 2 ** len(mults)
        self.embed_size = channels * self.min_res**2

    def forward(self, images: Tensor) -> Tensor:
        x = self.layers(images.contiguous(memory_format=torch.channels_last))
        return x.flatten(1)


class ImageDecoder(nn.Module):
    """Transposed CNN from features (N, F) to per-pixel logits (N, C_out, S, S).

    Mirrors ``ImageEncoder``: a linear map to the coarsest grid, then one upsampling stage per multiplier;
    ``outer_norm`` applies to the last normed (highest-resolution) stage.
    """

    def __init__(
        self,
        feature_size: int,
        out_channels: int,
        size_px: int,
        depth: int,
        mults: list[int],
        strided: bool = True,
        norm: Literal["rms", "layer"] = "rms",
        outer_norm: OuterNorm = "channel",
    ) -> None:
        super().__init__()
        self.min_res = size_px // 2 ** len(mults)
        self.top_channels = depth * mults[-1]
        self.project = DenseBlock(feature_size, self.top_channels * self.min_res**2, norm)
        layers: list[nn.Module] = []
        channels = self.top_channels
        stage_mults = list(reversed(mults[:-1]))
        for index, mult in enumerate(stage_mults):
            kind = _outer_kind(norm, outer_norm) if index == len(stage_mults) - 1 else norm
            upsample = self._upsample(channels, depth * mult, strided, bias=kind == "none")
            layers += _conv_stage(upsample, depth * mult, kind)
            channels = depth * mult
        layers.append(self._upsample(channels, out_channels, strided, bias=True))
        self.layers = nn.Sequential(*layers)

    @staticmethod
    def _upsample(in_channels: int, out_channels: int, strided: bool, bias: bool = False) -> nn.Module:
        if strided:
            return nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=bias)
        return nn.Sequential(
            nn.Upsample(scale_factor=2.0), nn.Conv2d(in_channels, out_channels, 5, 1, 2, bias=bias)
        )

    @property
    def output_bias(self) -> Tensor:
        """(C_out,) bias of the last layer: the logits every pixel starts from."""
        last = self.layers[-1]
        conv = last[-1] if isinstance(last, nn.Sequential) else last
        assert conv.bias is not None, "the decoder's output layer has no bias"
        return conv.bias

    def forward(self, features: Tensor) -> Tensor:
        x = self.project(features).reshape(-1, self.top_channels, self.min_res, self.min_res)
        return self.layers(x.contiguous(memory_format=torch.channels_last))


def zero_init_(layer: nn.Linear) -> nn.Linear:
    """Zero the weights and bias of an output layer (DreamerV3 outscale 0 for reward/value heads)."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer
