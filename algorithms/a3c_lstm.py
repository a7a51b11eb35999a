"""A3C with an LSTM (Mnih et al. 2016, Sec. 5.1 and Supplementary 8): the paper's strongest agent.

The network is the feed-forward A3C's torso followed by an LSTM (256 cells after the Mnih 2013
net's FC 256; 128 after the 128-unit MLP of vector tasks, a choice of this harness), with the softmax
policy and the linear value heads on the LSTM's output. The LSTM's state (h, c) is the agent's
memory: it starts at zero with every episode and is carried from step to step while acting.

The update is A3C's (algorithms/a3c.py, Algorithm S3), with the segment re-run through the LSTM from
the state its first step was taken from (``seg.state``, stored by the engine; no gradient flows
into it): truncated backpropagation through time over the segment's t_max steps.

    (h, c) ← seg.state
    for i = 0 … n:  (h, c) ← LSTM(torso(s_i), (h, c));  π(·|s_i), V(s_i) from h
    R = 0 if s_n is terminal, else V(s_n)
    for i = n−1 … 0:  R ← r_i + γR;  A_i = R − V(s_i)
    loss = Σ_i −log π(a_i|s_i) A_i − β H(π(·|s_i)) + c_v (R_i − V(s_i))²

Settings: t_max 5, β 0.01, c_v 0.5 as the feed-forward A3C (paper; the authors used t_max 20 for
the 57-game runs); 256 LSTM cells (paper: "an additional 256 LSTM cells after the final hidden
layer").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.a3c import A3C, A3CHyperparameters
from algorithms.base import Segment, register
from algorithms.networks import build_torso, obs_kind

LSTM_CELLS = {"image": 256, "vector": 128}


class LSTMActorCritic(nn.Module):
    """torso → LSTM → (policy logits, V). ``forward(x, state)`` takes one step for a batch of
    states and returns ``((logits, V), (h, c))``; ``unroll`` runs a sequence of one agent's states.

    One LSTM layer (``nn.LSTM``) holds the weights. Acting takes one step at a time through
    ``torch.lstm_cell`` (the function ``nn.LSTMCell`` calls) on those weights; the learning pass runs
    the whole segment through ``nn.LSTM`` at once, the same recurrence in one fused call, whose
    forward and backward pass over 21 steps took 1.3-2.2 ms here against 12 ms step by step."""

    def __init__(self, obs_space, n_actions: int):
        super().__init__()
        self.torso = build_torso(obs_space)
        self.cells = LSTM_CELLS[obs_kind(obs_space)]
        self.lstm = nn.LSTM(self.torso.out_dim, self.cells)
        self.policy = nn.Linear(self.cells, n_actions)
        self.value = nn.Linear(self.cells, 1)
        lstm = self.lstm
        self._cell = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)

    def zero_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros(batch, self.cells)
        return z, z.clone()

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.linear(h, self.policy.weight, self.policy.bias), F.linear(h, self.value.weight, self.value.bias).squeeze(-1)

    def forward(self, x: torch.Tensor, state):
        h, c = torch.lstm_cell(self.torso.forward(x), state, *self._cell)
        return self.heads(h), (h, c)

    def unroll(self, xs: torch.Tensor, state):
        """States s_0 … s_k of one episode, in order: (logits [k+1, A], V [k+1]) from the LSTM run
        over them from ``state``. The torso runs once on the whole batch (it has no memory)."""
        h0, c0 = state
        hs, _ = self.lstm(self.torso.forward(xs).unsqueeze(1), (h0.unsqueeze(0), c0.unsqueeze(0)))  # [k+1, 1, cells]
        return self.heads(hs.squeeze(1))


@register
class A3CLSTM(A3C):
    name = "a3c_lstm"
    Hyperparameters = A3CHyperparameters
    recurrent = True
    vector_defaults = {"t_max": 20}  # as the feed-forward A3C on vector tasks

    def build_network(self, obs_space, n_actions):
        return LSTMActorCritic(obs_space, n_actions)

    def initial_state(self, net, batch=1):
        return net.zero_state(batch)

    def loss(self, net, target_net, seg: Segment):
        logits, values = net.unroll(torch.cat([seg.obs, seg.next_obs]), seg.state)  # s_0 .. s_n from seg.state
        return self.actor_critic_loss(logits, values, seg)  # then A3C's loss, unchanged
