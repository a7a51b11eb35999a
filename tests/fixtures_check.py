"""Deliberately broken algorithms for ``harness check`` tests (imported by path, e.g.
``tests.fixtures_check:NaNLoss``). Each breaks one rule of the contract in algorithms/base.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algorithms.a3c import A3C


class NaNLoss(A3C):
    """The loss is NaN: the engine would stop the run as 'diverged'."""

    name = "check_nan_loss"

    def loss(self, net, target_net, seg):
        loss, stats = super().loss(net, target_net, seg)
        return loss * float("nan"), stats


class FrozenLoss(A3C):
    """A finite loss whose gradient is zero: θ never changes."""

    name = "check_frozen_loss"

    def loss(self, net, target_net, seg):
        loss, stats = super().loss(net, target_net, seg)
        return 0 * loss, stats


class OutOfRangeActions(A3C):
    """Off by one: returns n_actions when the sampled index is the last action."""

    name = "check_out_of_range"

    def act(self, out, frames, rng):
        return super().act(out, frames, rng) + 1


class TensorActions(A3C):
    """Returns a tensor instead of an int."""

    name = "check_tensor_actions"

    def act(self, out, frames, rng):
        logits, _ = out
        return logits[0].argmax()


class NumpyActionsClaimed(A3C):
    """Says act takes numpy outputs (as A3C does), but its act calls a tensor method."""

    name = "check_numpy_claimed"

    def act(self, out, frames, rng):
        logits, _ = out
        return int(logits[0].argmax(dim=0))  # torch's keyword: numpy's argmax takes axis


class IgnoresSeed(A3C):
    """Draws its actions from an unseeded generator instead of the rng it is given."""

    name = "check_ignores_seed"

    def act(self, out, frames, rng):
        return super().act(out, frames, np.random.default_rng())


class VectorLoss(A3C):
    """Returns the per-step losses instead of their sum."""

    name = "check_vector_loss"

    def loss(self, net, target_net, seg):
        loss, stats = super().loss(net, target_net, seg)
        return loss.expand(len(seg)), stats


@dataclass
class NeedsWidth:
    width: int  # no default: make_hyperparameters() cannot build it
    gamma: float = 0.99


class BadContract(A3C):
    """Hyperparameters without a default, and a default_lr without 'vector'."""

    name = "check_bad_contract"
    Hyperparameters = NeedsWidth
    default_lr = {"image": 7e-4}


class VectorOnlyNetwork(A3C):
    """A network that only works for flat observations."""

    name = "check_vector_only"

    def build_network(self, obs_space, n_actions):
        if len(obs_space.shape) != 1:
            raise ValueError(f"only flat observations, got shape {obs_space.shape}")
        return super().build_network(obs_space, n_actions)
