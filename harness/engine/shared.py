"""Shared memory: parameters, optimizer statistics and counters, as flat tensors.

Every parameter of a network is made a view into one contiguous buffer (and every gradient a view
into another). Syncing θ' ← θ is then one ``copy_``, clipping one norm, and an optimizer step a
handful of vectorised operations over the whole model, with no Python loop over parameters.
The shared buffers live in shared memory (``share_memory_()``) and are updated by all workers
without locks (Hogwild!).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.engine import kernels


def flatten_into(module: nn.Module, flat: torch.Tensor | None = None) -> torch.Tensor:
    """Make ``module``'s parameters views into one flat buffer (``flat`` if given, else a new one
    holding their current values) and return the buffer."""
    params = list(module.parameters())
    n = sum(p.numel() for p in params)
    if flat is None:
        flat = torch.cat([p.detach().reshape(-1) for p in params]) if params else torch.zeros(0)
    elif flat.numel() != n:
        raise ValueError(f"flat buffer has {flat.numel()} elements, the module {n}")
    _point_into(params, flat, "data")
    return flat


def _point_into(params: list[torch.Tensor], flat: torch.Tensor, attr: str) -> None:
    """Set ``p.<attr>`` of each parameter to its slice of ``flat``, in order."""
    offset = 0
    for p in params:
        k = p.numel()
        setattr(p, attr, flat[offset : offset + k].view_as(p))
        offset += k


def attach_flat_grad(module: nn.Module) -> torch.Tensor:
    """Give ``module`` gradients that are views into one flat buffer; autograd accumulates into them.
    Zero it with ``flat_grad.zero_()``, never ``module.zero_grad()`` (which would drop the views)."""
    params = list(module.parameters())
    flat_grad = torch.zeros(sum(p.numel() for p in params), dtype=params[0].dtype if params else None)
    _point_into(params, flat_grad, "grad")
    return flat_grad


_numpy_view: list = [None, None]  # the last flat gradient clipped, and its numpy view


def clip_grad_norm_(flat_grad: torch.Tensor, max_norm: float) -> float:
    """Global-norm clipping of the whole gradient; returns the norm before clipping (one compiled pass,
    ``engine.kernels``; a second only when it clips)."""
    if flat_grad is _numpy_view[0]:  # a worker clips the same buffer every time: .numpy() costs a µs
        g = _numpy_view[1]
    else:
        g = flat_grad.numpy()
        _numpy_view[:] = flat_grad, g
    norm = math.sqrt(kernels.sum_of_squares(g))
    if max_norm > 0 and norm > max_norm:
        kernels.scale(g, max_norm / (norm + 1e-6))  # torch's mul_ took 5 µs more, on CartPole's MLP
    return norm


def linear_lr(lr0: float, frames: int, budget: int) -> float:
    """Learning rate annealed linearly from lr0 at T=0 to 0 at T=budget."""
    return lr0 * max(0.0, 1.0 - frames / budget)


@dataclass
class OptimizerState:
    """Optimizer statistics in shared memory, allocated by the supervisor so checkpoints see them.

    ``stats`` is [1, n] for shared RMSProp (one g for all workers) and [threads, n] for the
    per-worker optimizers (RMSProp with per-thread g, momentum SGD with per-thread m).
    """

    kind: str
    stats: torch.Tensor

    @classmethod
    def allocate(cls, kind: str, n_params: int, threads: int) -> OptimizerState:
        rows = 1 if kind == "shared_rmsprop" else threads
        return cls(kind, torch.zeros(rows, n_params).share_memory_())


class FlatOptimizer:
    """One worker's view of the run's optimizer. ``step`` applies a flat gradient to shared θ.

    - ``shared_rmsprop`` (paper default): g ← αg + (1−α)Δθ²; θ ← θ − η Δθ / sqrt(g + ε), g shared.
    - ``rmsprop``: the same with a g per worker.
    - ``momentum_sgd``: m ← αm + (1−α)Δθ; θ ← θ − ηm, an m per worker.

    Each step is one compiled pass over the buffers (``engine.kernels``), in place.
    """

    def __init__(self, state: OptimizerState, worker: int, alpha: float, eps: float, momentum: float):
        self.kind = state.kind
        self.alpha = float(momentum if state.kind == "momentum_sgd" else alpha)
        self.eps = float(eps)
        self._stat = state.stats[0 if state.kind == "shared_rmsprop" else worker].numpy()  # a view of the shared row
        self._views: tuple = (None, None, None, None)  # (params, grad) and their numpy views, from the last step

    def step(self, params: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
        p, g, p_np, g_np = self._views
        if params is not p or grad is not g:  # a worker passes the same two buffers every time: .numpy() once
            p_np, g_np = params.numpy(), grad.numpy()
            self._views = (params, grad, p_np, g_np)
        if self.kind == "momentum_sgd":
            kernels.momentum_step(p_np, g_np, self._stat, self.alpha, float(lr))
        else:
            kernels.rmsprop_step(p_np, g_np, self._stat, self.alpha, self.eps, float(lr))
