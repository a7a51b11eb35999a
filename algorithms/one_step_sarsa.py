"""Asynchronous one-step SARSA (Mnih et al. 2016, Section 4).

Identical to one-step Q-learning except for the target, which bootstraps on the action a_{i+1}
actually taken next (chosen ε-greedily) instead of the greedy one:

    y_i = r_i                                    if s_{i+1} is terminal
    y_i = r_i + γ Q(s_{i+1}, a_{i+1}; θ⁻)        otherwise
    L_i = (y_i − Q(s_i, a_i; θ))²

Gradients of the L_i are accumulated over I_AsyncUpdate = 5 steps (``t_max``) or until the end of an
episode and applied to the shared θ without locks; θ⁻ is the shared target network (θ⁻ ← θ every
40,000 frames). For the last transition of a segment, a_{i+1} is the action the engine chose in s_n
before the update (``needs_next_action``) and then takes as the first action of the next segment.
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
    register,
    squared_error_gradient,
)
from algorithms.networks import QNetwork


@register
class OneStepSarsa(EpsilonGreedyMixin, Algorithm):
    name = "one_step_sarsa"
    Hyperparameters = EpsilonHyperparameters
    uses_target_network = True
    needs_next_action = True
    vector_defaults = VECTOR_EPSILON_DEFAULTS

    def build_network(self, obs_space, n_actions):
        return QNetwork(obs_space, n_actions)

    def loss(self, net, target_net, seg: Segment):
        q = net(seg.obs).gather(1, seg.actions[:, None]).squeeze(1)  # Q(s_i, a_i; θ)
        with torch.no_grad():
            next_action = seg.next_action if seg.next_action is not None else 0  # unused if terminal
            a_next = torch.cat([seg.actions[1:], seg.actions.new_tensor([next_action])])
            q_next = target_net(seg.successors).gather(1, a_next[:, None]).squeeze(1)  # Q(s_{i+1}, a_{i+1}; θ⁻)
            not_terminal = torch.ones_like(q_next)
            if seg.terminal:
                not_terminal[-1] = 0.0
            y = seg.rewards + self.hp.gamma * not_terminal * q_next
        loss = ((y - q) ** 2).sum()
        return loss, {"q_mean": float(q.detach().mean())}

    def loss_gradient(self, q, target, seg: Segment):
        """``loss`` and ∂loss/∂Q(s_i, ·; θ) for the fast path: −2 (y_i − Q(s_i, a_i; θ)) at a_i."""
        s = seg.numpy()
        next_action = seg.next_action if seg.next_action is not None else 0  # unused if terminal
        a_next = np.append(s.actions[1:], next_action)
        q_next = target(s.states[1:])[np.arange(len(a_next)), a_next]  # Q(s_{i+1}, a_{i+1}; θ⁻)
        y = s.rewards + self.hp.gamma * q_next
        if seg.terminal:
            y[-1] = s.rewards[-1]  # only the last transition can be terminal: y = r
        return squared_error_gradient(q, s.actions, y)
