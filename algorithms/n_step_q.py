"""Asynchronous n-step Q-learning (Mnih et al. 2016, Algorithm S2), forward view.

Each actor-learner syncs θ' ← θ, acts ε-greedily for t_max = 5 steps or until a terminal state,
then computes, from the state s_t it stopped in,

    R = 0                          if s_t is terminal
    R = max_a Q(s_t, a; θ⁻)        otherwise
    for i = t−1, …, t_start:   R ← r_i + γR;   dθ += ∂ (R − Q(s_i, a_i; θ'))² / ∂θ'

so the last state gets a one-step return, the one before a two-step return, and so on: the longest
available n-step return for each state of the segment. dθ is applied to the shared θ without locks;
θ⁻ is the shared target network (θ⁻ ← θ every 40,000 frames).
"""

from __future__ import annotations

import numpy as np
import torch

from algorithms.base import (
    VECTOR_EPSILON_DEFAULTS,
    Algorithm,
    EpsilonGreedyMixin,
    EpsilonHyperparameters,
    Segment,
    discounted_returns,
    n_step_returns,
    register,
    squared_error_gradient,
)
from algorithms.networks import QNetwork


@register
class NStepQ(EpsilonGreedyMixin, Algorithm):
    name = "n_step_q"
    Hyperparameters = EpsilonHyperparameters
    uses_target_network = True
    vector_defaults = VECTOR_EPSILON_DEFAULTS

    def build_network(self, obs_space, n_actions):
        return QNetwork(obs_space, n_actions)

    def loss(self, net, target_net, seg: Segment):
        with torch.no_grad():
            bootstrap = 0.0 if seg.terminal else float(target_net(seg.next_obs).max())  # max_a Q(s_t, a; θ⁻)
            R = n_step_returns(seg.rewards, bootstrap, self.hp.gamma)
        q = net(seg.obs).gather(1, seg.actions[:, None]).squeeze(1)  # Q(s_i, a_i; θ')
        loss = ((R - q) ** 2).sum()
        return loss, {"q_mean": float(q.detach().mean())}

    def loss_gradient(self, q, target, seg: Segment):
        """``loss`` and ∂loss/∂Q(s_i, ·; θ') for the fast path: −2 (R_i − Q(s_i, a_i; θ')) at a_i."""
        s = seg.numpy()
        bootstrap = 0.0 if seg.terminal else float(target(s.states[-1:]).max())  # max_a Q(s_t, a; θ⁻)
        R = np.asarray(discounted_returns(s.rewards.tolist(), bootstrap, self.hp.gamma), dtype=np.float32)
        return squared_error_gradient(q, s.actions, R)
