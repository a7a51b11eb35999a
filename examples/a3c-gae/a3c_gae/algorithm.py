"""A3C with generalised advantage estimation, GAE(λ) (Schulman et al. 2016).

Same network, acting and value loss as the built-in A3C; only the policy gradient's advantage
changes. Within a segment s_0 .. s_n (V(s_n) = 0 when s_n is terminal)::

    δ_i = r_i + γ V(s_{i+1}) − V(s_i)
    A_i = δ_i + (γλ) δ_{i+1} + … + (γλ)^{n−1−i} δ_{n−1}

λ = 1 gives A3C's n-step advantage R_i − V(s_i); λ = 0 the one-step TD error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from algorithms.base import Algorithm, Hyperparameters, Segment, n_step_returns
from algorithms.networks import ActorCriticNetwork


@dataclass
class GAEHyperparameters(Hyperparameters):  # inherits gamma = 0.99, t_max = 5
    gae_lambda: float = 0.95
    entropy_beta: float = 0.01
    value_loss_coef: float = 0.5


class A3CGAE(Algorithm):
    name = "a3c_gae"
    Hyperparameters = GAEHyperparameters
    default_lr = {"image": 7e-4, "vector": 1e-3}

    def build_network(self, obs_space, n_actions):
        return ActorCriticNetwork(obs_space, n_actions)  # (logits [B, A], V [B])

    def act(self, out, frames: int, rng: np.random.Generator) -> int:
        logits, _ = out
        p = torch.softmax(logits[0].double(), dim=0).numpy()
        return int(rng.choice(len(p), p=p / p.sum()))  # all randomness from the engine's rng

    def act_eval(self, out, rng: np.random.Generator) -> int:
        return self.act(out, 0, rng)

    def loss(self, net, target_net, seg: Segment):
        n, hp = len(seg), self.hp
        logits, values = net(torch.cat([seg.obs, seg.next_obs]))  # s_0 .. s_n in one batch
        v = values.detach()
        bootstrap = 0.0 if seg.terminal else float(v[n])
        next_v = torch.cat([v[1:n], torch.tensor([bootstrap])])
        deltas = seg.rewards + hp.gamma * next_v - v[:n]
        advantage = n_step_returns(deltas, 0.0, hp.gamma * hp.gae_lambda)  # Σ (γλ)^k δ_{i+k}
        returns = n_step_returns(seg.rewards, bootstrap, hp.gamma)  # the critic's n-step targets
        log_probs = F.log_softmax(logits[:n], dim=1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=1)
        log_pi_a = log_probs.gather(1, seg.actions[:, None]).squeeze(1)
        policy_loss = -(log_pi_a * advantage).sum() - hp.entropy_beta * entropy.sum()
        value_loss = hp.value_loss_coef * ((returns - values[:n]) ** 2).sum()
        return policy_loss + value_loss, {
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(value_loss.detach()),
            "entropy": float(entropy.detach().mean()),
        }
