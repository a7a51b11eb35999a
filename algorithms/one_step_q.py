"""Asynchronous one-step Q-learning (Mnih et al. 2016, Algorithm S1).

Each actor-learner acts ε-greedily with its own final ε and, for every transition
(s_i, a_i, r_i, s_{i+1}) it collects, accumulates the gradient of

    y_i = r_i                                   if s_{i+1} is terminal
    y_i = r_i + γ max_a' Q(s_{i+1}, a'; θ⁻)     otherwise
    L_i = (y_i − Q(s_i, a_i; θ))²

Every I_AsyncUpdate = 5 steps (``t_max``), or at the end of an episode, the accumulated gradient
dθ = Σ_i ∂L_i/∂θ is applied to the shared parameters θ without locks. θ⁻ is a shared target
network that the engine sets to θ every 40,000 frames.

Implementation note: the engine syncs a local copy θ' ← θ at the start of each segment and this
module computes the five per-step losses in one batch at its end. The sum of their gradients is the
paper's accumulated dθ; the paper differentiates at the shared θ of each step, which other workers
move in between: both are equally asynchronous.
"""

from __future__ import annotations

import torch

from algorithms.base import (
    VECTOR_EPSILON_DEFAULTS,
    Algorithm,
    EpsilonGreedyMixin,
    EpsilonHyperparameters,
    Segment,
    register,
    squared_error_gradient,
)
from algorithms.networks import QNetwork


@register
class OneStepQ(EpsilonGreedyMixin, Algorithm):
    name = "one_step_q"
    Hyperparameters = EpsilonHyperparameters
    uses_target_network = True
    vector_defaults = VECTOR_EPSILON_DEFAULTS

    def build_network(self, obs_space, n_actions):
        return QNetwork(obs_space, n_actions)

    def loss(self, net, target_net, seg: Segment):
        q = net(seg.obs).gather(1, seg.actions[:, None]).squeeze(1)  # Q(s_i, a_i; θ)
        with torch.no_grad():
            q_next = target_net(seg.successors).max(dim=1).values  # max_a' Q(s_{i+1}, a'; θ⁻)
            not_terminal = torch.ones_like(q_next)
            if seg.terminal:
                not_terminal[-1] = 0.0  # only the last transition of a segment can be terminal
            y = seg.rewards + self.hp.gamma * not_terminal * q_next
        loss = ((y - q) ** 2).sum()
        return loss, {"q_mean": float(q.detach().mean())}

    def loss_gradient(self, q, target, seg: Segment):
        """``loss`` and ∂loss/∂Q(s_i, ·; θ) for the fast path: −2 (y_i − Q(s_i, a_i; θ)) at a_i."""
        s = seg.numpy()
        q_next = target(s.states[1:]).max(axis=1)  # max_a' Q(s_{i+1}, a'; θ⁻)
        y = s.rewards + self.hp.gamma * q_next
        if seg.terminal:
            y[-1] = s.rewards[-1]  # only the last transition can be terminal: y = r
        return squared_error_gradient(q, s.actions, y)
