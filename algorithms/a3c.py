"""Asynchronous advantage actor-critic, A3C (Mnih et al. 2016, Algorithm S3), feed-forward.

Each actor-learner syncs θ' ← θ, samples actions from its policy π(·|s; θ') for t_max = 5 steps or
until a terminal state, then computes, from the state s_t it stopped in,

    R = 0                 if s_t is terminal
    R = V(s_t; θ'_v)      otherwise
    for i = t−1, …, t_start:
        R ← r_i + γR
        A_i = R − V(s_i; θ'_v)                                   (advantage, no gradient through it)
        dθ  += −∇θ' [ log π(a_i|s_i; θ') A_i + β H(π(·|s_i; θ')) ]
        dθ_v += ∇θ'_v  c_v (R − V(s_i; θ'_v))²

with entropy weight β = 0.01 and value-loss weight c_v = 0.5, and applies dθ, dθ_v to the shared
parameters without locks. Policy (softmax) and value (linear) are two heads on one shared torso, so
one backward pass through ``loss`` gives both gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from algorithms.base import Algorithm, Hyperparameters, Segment, discounted_returns, n_step_returns, register
from algorithms.networks import ActorCriticNetwork


@dataclass
class A3CHyperparameters(Hyperparameters):
    entropy_beta: float = 0.01
    value_loss_coef: float = 0.5


@register
class A3C(Algorithm):
    name = "a3c"
    Hyperparameters = A3CHyperparameters
    # Vector observations: t_max = 20 (the authors' value for the 57-game runs); with 5-step
    # segments A3C on CartPole-sized tasks collapses to a deterministic policy in many runs.
    vector_defaults = {"t_max": 20}

    def build_network(self, obs_space, n_actions):
        return ActorCriticNetwork(obs_space, n_actions)

    act_takes_numpy = True  # act reads the logits through tolist(), a tensor's or an array's

    def act(self, out, frames, rng: np.random.Generator) -> int:
        logits, _ = out
        z = logits[0].tolist()  # Python floats: a few actions, every step (a torch softmax costs µs)
        top = max(z)
        probs = [math.exp(v - top) for v in z]  # π(·|s; θ') ∝ exp(logits), unnormalised
        u = rng.random() * sum(probs)  # inverse CDF: the first action whose cumulative probability exceeds u
        for a, p in enumerate(probs):
            u -= p
            if u < 0.0:
                return a
        return len(probs) - 1

    def act_eval(self, out, rng: np.random.Generator) -> int:
        return self.act(out, 0, rng)  # the stochastic policy, as trained

    def loss(self, net, target_net, seg: Segment):
        logits, values = net(torch.cat([seg.obs, seg.next_obs]))  # one batch: s_0 .. s_n
        return self.actor_critic_loss(logits, values, seg)

    loss_needs_next_output = True  # V(s_t; θ'_v) bootstraps R

    def loss_gradient(self, out, target, seg: Segment):
        """``loss`` and its gradient with respect to the logits and V at s_0 .. s_n, for the fast path:

            ∂/∂z_i  = (π_i − onehot(a_i)) A_i + β π_i (log π_i + H_i)     (policy and entropy terms)
            ∂/∂V_i  = −2 c_v A_i,  with A_i = R_i − V(s_i);  0 at s_n (the bootstrap is not differentiated)
        """
        logits, values = out
        n, beta, c_v = len(seg), self.hp.entropy_beta, self.hp.value_loss_coef
        bootstrap = 0.0 if seg.terminal else float(values[n])
        R = np.asarray(discounted_returns(seg.rewards.tolist(), bootstrap, self.hp.gamma), dtype=np.float32)
        z = logits[:n] - logits[:n].max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        probs = np.exp(log_probs)
        entropy = -(probs * log_probs).sum(axis=1)
        i, a = np.arange(n), seg.numpy().actions
        advantage = R - values[:n]
        loss = (-(log_probs[i, a] * advantage).sum() - beta * entropy.sum()
                + c_v * (advantage * advantage).sum())
        d_logits = np.zeros_like(logits)
        d_logits[:n] = probs * advantage[:, None] + beta * probs * (log_probs + entropy[:, None])
        d_logits[i, a] -= advantage
        d_values = np.zeros_like(values)
        d_values[:n] = -2.0 * c_v * advantage
        return float(loss), (d_logits, d_values)

    def actor_critic_loss(self, logits, values, seg: Segment):
        """The segment's loss from π's logits and V at s_0 .. s_n (A3C-LSTM computes them with its
        LSTM and shares the rest)."""
        n = len(seg)
        bootstrap = 0.0 if seg.terminal else float(values[n].detach())  # V(s_t; θ'_v)
        R = n_step_returns(seg.rewards, bootstrap, self.hp.gamma)
        logits, values = logits[:n], values[:n]
        log_probs = F.log_softmax(logits, dim=1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=1)  # H(π(·|s_i))
        log_pi_a = log_probs.gather(1, seg.actions[:, None]).squeeze(1)
        advantage = R - values
        policy_loss = -(log_pi_a * advantage.detach()).sum() - self.hp.entropy_beta * entropy.sum()
        value_loss = self.hp.value_loss_coef * (advantage**2).sum()
        return policy_loss + value_loss, {
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(value_loss.detach()),
            "entropy": float(entropy.detach().mean()),
        }
