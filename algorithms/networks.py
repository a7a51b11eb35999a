"""Network torsos shared by the built-in methods; each method adds its own output heads.

- Image observations (Atari, [4, 84, 84] uint8): the Mnih et al. 2013 network used in the paper's
  scaling experiments: conv 16 filters 8x8 stride 4 -> conv 32 filters 4x4 stride 2 -> FC 256,
  ReLU after each. Inputs are scaled to [0, 1] inside the network.
- Small images (smaller side < 36 pixels, e.g. MinAtar's 10x10xC booleans): the MinAtar reference
  network (Young & Tian 2019): conv 16 filters 3x3 stride 1 -> FC 128, ReLU after each.
- Channel-last images ([H, W, C]) are permuted to [C, H, W] inside the torso.
- Vector observations (CartPole, ...): an MLP with two hidden layers of 128 units, ReLU (with 64,
  one-step SARSA on CartPole missed 195 within 500k frames in 2 of 7 runs; with 128, 0 of 15).

The layers are ordinary modules (their parameters, names and initialisation are PyTorch's), but the
``forward`` methods call the functional ops on them directly rather than calling each submodule (and
call a torso's ``forward`` rather than the torso; each torso keeps its layers in a plain tuple, since
indexing an ``nn.Sequential`` costs microseconds too): a worker runs a forward pass at batch size 1
every step, and on these CPUs each ``nn.Module`` call costs about as much as the small layer's
arithmetic (docs/BENCHMARKS.md, "Per-step overhead"). So forward hooks run only on the network as a
whole, never on its torso or layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def obs_kind(obs_space: Any) -> str:
    """``"image"`` for [C, H, W] or [H, W, C] observations, ``"vector"`` for flat ones."""
    return "image" if len(obs_space.shape) == 3 else "vector"


#: images whose smaller side is below this get the small-image network (the Mnih 2013 net's
#: 8x8/4 and 4x4/2 convolutions need at least 36 pixels)
SMALL_IMAGE = 36


def image_layout(shape: tuple[int, ...]) -> tuple[bool, int, int, int]:
    """``(channels_last, C, H, W)`` of an image observation: channel-last when the last axis is the
    shortest and at most 16 long while the first is longer (MinAtar's 10x10xC), else channel-first
    (Atari's 4x84x84)."""
    a, b, c = (int(v) for v in shape)
    if c < a and c <= 16:
        return True, c, a, b
    return False, a, b, c


def as_image_batch(x: torch.Tensor, channels_last: bool, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[B, C, H, W] of the network's dtype (float32): channel-last batches permuted, uint8 pixels
    scaled to [0, 1], booleans and floats taken as they are."""
    if channels_last:
        x = x.permute(0, 3, 1, 2)
    return x.to(dtype) * (1.0 / 255.0) if x.dtype == torch.uint8 else x.to(dtype)


class AtariTorso(nn.Module):
    """Mnih et al. 2013 (the paper's scaling experiments): conv 16 8x8/4, conv 32 4x4/2, FC 256;
    uint8 inputs scaled to [0, 1]."""

    def __init__(self, in_channels: int = 4, size: int = 84, width: int | None = None, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 16, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n = self.conv(torch.zeros(1, in_channels, size, width or size)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n, 256), nn.ReLU())
        self.out_dim = 256
        self._layers = (self.conv[0], self.conv[2], self.fc[0])  # a plain tuple: indexing a Sequential costs µs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, fc = self._layers
        h = F.relu(F.conv2d(as_image_batch(x, self.channels_last, c1.weight.dtype), c1.weight, c1.bias, stride=4))
        h = F.relu(F.conv2d(h, c2.weight, c2.bias, stride=2))
        return F.relu(F.linear(h.flatten(1), fc.weight, fc.bias))


class SmallImageTorso(nn.Module):
    """Small grids (MinAtar's 10x10xC, Young & Tian 2019): the MinAtar reference network, one conv of
    16 3x3 filters with stride 1, then FC 128, ReLU after each. Boolean or 0/1 inputs, used as they
    are; channel-last observations are permuted inside."""

    def __init__(self, in_channels: int, height: int, width: int, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last
        self.conv = nn.Sequential(nn.Conv2d(in_channels, 16, 3, stride=1), nn.ReLU(), nn.Flatten())
        n = 16 * (height - 2) * (width - 2)
        self.fc = nn.Sequential(nn.Linear(n, 128), nn.ReLU())
        self.out_dim = 128
        self._layers = (self.conv[0], self.fc[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, fc = self._layers
        h = F.relu(F.conv2d(as_image_batch(x, self.channels_last, c.weight.dtype), c.weight, c.bias))
        return F.relu(F.linear(h.flatten(1), fc.weight, fc.bias))


class MLPTorso(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.out_dim = hidden
        self._layers = (self.net[0], self.net[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1, l2 = self._layers
        return F.relu(F.linear(F.relu(F.linear(x.to(l1.weight.dtype), l1.weight, l1.bias)), l2.weight, l2.bias))


def build_torso(obs_space: Any) -> nn.Module:
    """The shared non-output layers for an observation space: the Mnih 2013 net for images of 36
    pixels or more a side (Atari's 84x84), the MinAtar reference net for smaller grids, an MLP for
    vectors. Plug-ins choose another by overriding ``build_network`` (docs/PLUGINS.md)."""
    shape = obs_space.shape
    if len(shape) == 3:
        last, c, h, w = image_layout(shape)
        if min(h, w) < SMALL_IMAGE:
            return SmallImageTorso(c, h, w, channels_last=last)
        return AtariTorso(c, h, w, channels_last=last)
    return MLPTorso(int(np.prod(shape)))


class QNetwork(nn.Module):
    """Torso + one linear output per action: Q(s, ·)."""

    def __init__(self, obs_space: Any, n_actions: int):
        super().__init__()
        self.torso = build_torso(obs_space)
        self.q = nn.Linear(self.torso.out_dim, n_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.torso.forward(x), self.q.weight, self.q.bias)


class ActorCriticNetwork(nn.Module):
    """Softmax policy logits + linear value: (logits [B, A], V [B]).

    Images: one shared torso under both heads, as in the paper. Vectors: a torso per head, because
    on small control tasks the value loss (returns in the hundreds) otherwise swamps the shared
    features the policy relies on.
    """

    def __init__(self, obs_space: Any, n_actions: int):
        super().__init__()
        self.torso = build_torso(obs_space)
        self.value_torso = build_torso(obs_space) if obs_kind(obs_space) == "vector" else None
        self.policy = nn.Linear(self.torso.out_dim, n_actions)
        self.value = nn.Linear(self.torso.out_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.torso.forward(x)
        hv = h if self.value_torso is None else self.value_torso.forward(x)
        return F.linear(h, self.policy.weight, self.policy.bias), F.linear(hv, self.value.weight, self.value.bias).squeeze(-1)
