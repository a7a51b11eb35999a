"""Each algorithm's targets and loss against values computed by hand on tiny fixed transitions.

States are integer ids; the "networks" are lookup tables, so every Q, V and π below is a number
written in the test, and each expected loss is worked out in a comment.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from algorithms.a3c import A3C
from algorithms.base import Segment, linear_epsilon, n_step_returns
from algorithms.n_step_q import NStepQ
from algorithms.one_step_q import OneStepQ
from algorithms.one_step_sarsa import OneStepSarsa


class TableQ(nn.Module):
    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table, dtype=torch.float32))

    def forward(self, s):
        return self.table[s.long().view(-1)]


class TableAC(nn.Module):
    def __init__(self, logits, values):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits, dtype=torch.float32))
        self.values = nn.Parameter(torch.tensor(values, dtype=torch.float32))

    def forward(self, s):
        idx = s.long().view(-1)
        return self.logits[idx], self.values[idx]


def seg(states, actions, rewards, next_state, terminal, next_action=None):
    return Segment(
        obs=torch.tensor(states, dtype=torch.float32)[:, None],
        actions=torch.tensor(actions),
        rewards=torch.tensor(rewards, dtype=torch.float32),
        next_obs=torch.tensor([[next_state]], dtype=torch.float32),
        terminal=terminal,
        next_action=next_action,
    )


Q = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
QT = [[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]]  # target network θ⁻


def hp(cls, **kw):
    return cls(cls.Hyperparameters(gamma=0.9, **kw))


def test_one_step_q_target_and_loss():
    algo = hp(OneStepQ)
    s = seg([0, 1], [0, 1], [1.0, -1.0], 2, terminal=False)
    # y0 = 1 + 0.9·max(30, 40) = 37, Q(s0,a0) = 1;  y1 = −1 + 0.9·max(50, 60) = 53, Q(s1,a1) = 4
    loss, _ = algo.loss(TableQ(Q), TableQ(QT), s)
    assert loss.item() == pytest.approx((37 - 1) ** 2 + (53 - 4) ** 2)  # 3697


def test_one_step_q_terminal_has_no_bootstrap():
    algo = hp(OneStepQ)
    s = seg([0, 1], [0, 1], [1.0, -1.0], 2, terminal=True)
    # y1 = r1 = −1 (terminal):  (37 − 1)² + (−1 − 4)² = 1296 + 25
    loss, _ = algo.loss(TableQ(Q), TableQ(QT), s)
    assert loss.item() == pytest.approx(1321.0)


def test_one_step_gradient_is_taken_at_online_net_only():
    algo = hp(OneStepQ)
    net, target = TableQ(Q), TableQ(QT)
    loss, _ = algo.loss(net, target, seg([0], [1], [0.0], 1, terminal=False))
    loss.backward()
    # L = (y − Q(s0,1))², y = 0.9·40 = 36: dL/dQ(s0,1) = −2(36 − 2) = −68, nothing else moves
    assert net.table.grad.tolist() == [[0.0, -68.0], [0.0, 0.0], [0.0, 0.0]]
    assert target.table.grad is None


def test_sarsa_bootstraps_on_the_action_taken_not_the_max():
    algo = hp(OneStepSarsa)
    s = seg([0, 1], [1, 0], [1.0, -1.0], 2, terminal=False, next_action=0)
    # y0 = 1 + 0.9·QT(s1, a1=0) = 1 + 27 = 28 (Q-learning would use max = 40 → 37)
    # y1 = −1 + 0.9·QT(s2, a'=0) = −1 + 45 = 44
    # Q(s0,1) = 2, Q(s1,0) = 3:  (28 − 2)² + (44 − 3)² = 676 + 1681
    loss, _ = algo.loss(TableQ(Q), TableQ(QT), s)
    assert loss.item() == pytest.approx(2357.0)
    q_loss, _ = hp(OneStepQ).loss(TableQ(Q), TableQ(QT), s)
    assert q_loss.item() == pytest.approx((37 - 2) ** 2 + (53 - 3) ** 2)


def test_sarsa_terminal():
    algo = hp(OneStepSarsa)
    s = seg([0, 1], [1, 0], [1.0, -1.0], 2, terminal=True, next_action=None)
    assert algo.loss(TableQ(Q), TableQ(QT), s)[0].item() == pytest.approx((28 - 2) ** 2 + (-1 - 3) ** 2)


def test_n_step_returns_forward_view():
    r = torch.tensor([1.0, 0.0, 2.0])
    # R = 10 → R2 = 2 + 0.5·10 = 7 → R1 = 0 + 3.5 = 3.5 → R0 = 1 + 1.75 = 2.75
    assert n_step_returns(r, 10.0, 0.5).tolist() == [2.75, 3.5, 7.0]
    # terminal: R = 0 → 2, 1, 1.5
    assert n_step_returns(r, 0.0, 0.5).tolist() == [1.5, 1.0, 2.0]


def test_n_step_q_loss():
    algo = NStepQ(NStepQ.Hyperparameters(gamma=0.5))
    s = seg([0, 1], [0, 1], [1.0, 2.0], 2, terminal=False)
    # R = max QT(s2) = 60 → R1 = 2 + 30 = 32 → R0 = 1 + 16 = 17;  Q(s0,0) = 1, Q(s1,1) = 4
    loss, _ = algo.loss(TableQ(Q), TableQ(QT), s)
    assert loss.item() == pytest.approx((17 - 1) ** 2 + (32 - 4) ** 2)
    s_term = seg([0, 1], [0, 1], [1.0, 2.0], 2, terminal=True)
    # R = 0 → R1 = 2, R0 = 2
    assert algo.loss(TableQ(Q), TableQ(QT), s_term)[0].item() == pytest.approx((2 - 1) ** 2 + (2 - 4) ** 2)


def test_a3c_advantage_entropy_and_value_terms():
    algo = A3C(A3C.Hyperparameters(gamma=0.5, entropy_beta=0.01, value_loss_coef=0.5))
    net = TableAC(logits=[[0.0, 0.0]] * 3, values=[2.0, 4.0, 8.0])
    s = seg([0, 1], [0, 1], [1.0, 0.0], 2, terminal=False)
    # R = V(s2) = 8 → R1 = 0 + 4 = 4 → R0 = 1 + 2 = 3;  A0 = 3 − 2 = 1, A1 = 4 − 4 = 0
    # π uniform: log π = −ln 2, H = ln 2
    # policy: −(−ln2·1 − ln2·0) − 0.01·(2 ln 2);  value: 0.5·(1² + 0²)
    loss, stats = algo.loss(net, None, s)
    ln2 = math.log(2)
    assert loss.item() == pytest.approx(ln2 - 0.02 * ln2 + 0.5)
    assert stats["entropy"] == pytest.approx(ln2)
    loss.backward()
    # dL/dV(s0) = 0.5·2·(V0 − R0) = −1; the advantage in the policy term carries no gradient;
    # V(s2) is the bootstrap and gets none either
    assert net.values.grad.tolist() == pytest.approx([-1.0, 0.0, 0.0])
    # dL/dlogits(s0) = −A0·(onehot(a0) − π) − β·dH/dlogits (0 at the uniform policy) = (−0.5, 0.5)
    assert net.logits.grad[0].tolist() == pytest.approx([-0.5, 0.5])
    assert net.logits.grad[1].tolist() == pytest.approx([0.0, 0.0])


def test_a3c_terminal_bootstraps_zero():
    algo = A3C(A3C.Hyperparameters(gamma=0.5, entropy_beta=0.0, value_loss_coef=0.5))
    net = TableAC(logits=[[0.0, 0.0]] * 3, values=[2.0, 4.0, 8.0])
    s = seg([0, 1], [0, 1], [1.0, 0.0], 2, terminal=True)
    # R1 = 0, R0 = 1; A0 = −1, A1 = −4: policy −(−ln2·(−1) − ln2·(−4)) = −5 ln2; value 0.5·(1 + 16)
    assert algo.loss(net, None, s)[0].item() == pytest.approx(-5 * math.log(2) + 8.5)


def test_epsilon_schedule():
    assert linear_epsilon(0, 0.1, 100) == 1.0
    assert linear_epsilon(50, 0.1, 100) == pytest.approx(0.55)
    assert linear_epsilon(100, 0.1, 100) == pytest.approx(0.1)
    assert linear_epsilon(10_000, 0.01, 100) == pytest.approx(0.01)


@pytest.mark.parametrize("eps", [0.05, 0.3, 1.0])
def test_epsilon_greedy_explores_with_probability_epsilon_uniformly_over_actions(eps):
    """One draw decides exploring and the random action: over 60,000 steps with Q favouring action 2
    of 4, each other action is taken ε/4 of the time and action 2 1 − 3ε/4 (within 5 standard errors),
    and exactly one uniform is drawn per step."""
    from algorithms.base import epsilon_greedy

    q = torch.tensor([[0.0, 1.0, 3.0, 2.0]])
    rng, twin = np.random.default_rng(7), np.random.default_rng(7)
    n = 60_000
    counts = np.bincount([epsilon_greedy(q, eps, rng) for _ in range(n)], minlength=4)
    twin.random(n)
    assert rng.random() == twin.random()  # the streams are still in step
    expect = np.full(4, eps / 4)
    expect[2] += 1 - eps
    se = np.sqrt(expect * (1 - expect) / n)
    assert np.all(np.abs(counts / n - expect) <= 5 * se + 1e-12), (counts / n, expect)


def test_final_epsilon_sampled_per_worker_with_paper_probabilities():
    algo = OneStepQ()
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(20_000):
        algo.init_worker(0, rng)
        draws.append(algo.final_epsilon)
    draws = np.array(draws)
    assert set(np.unique(draws)) == {0.1, 0.01, 0.5}
    assert np.mean(draws == 0.1) == pytest.approx(0.4, abs=0.02)
    assert np.mean(draws == 0.01) == pytest.approx(0.3, abs=0.02)
    assert np.mean(draws == 0.5) == pytest.approx(0.3, abs=0.02)
    assert algo.epsilon(0) == 1.0 and algo.epsilon(4_000_000) == algo.final_epsilon


@pytest.mark.parametrize("eps, probs", [((0.1, 0.01, 0.5), (0.4, 0.3, 0.3)), ((0.3, 0.05), (2.0, 1.0)), ((0.2,), (1.0,)),
                                         ((0.1, 0.01, 0.5), (0.4, 0.0, 0.6))])
def test_final_epsilon_draw_is_numpys_choice_draw_for_draw(eps, probs):
    """The inverse-CDF table gives what ``rng.choice(eps, p=probs / probs.sum())`` gave, draw for draw,
    from the same generator state (a run's exploration is unchanged by the faster draw)."""
    from algorithms.base import EpsilonHyperparameters

    algo = OneStepQ(EpsilonHyperparameters(final_epsilons=eps, final_epsilon_probs=probs))
    ours, numpys = np.random.default_rng(7), np.random.default_rng(7)
    p = np.asarray(probs, dtype=float)
    for _ in range(5_000):
        assert algo.draw_final_epsilon(ours) == float(numpys.choice(np.asarray(eps, dtype=float), p=p / p.sum()))
    assert ours.random() == numpys.random()  # both consumed the same number of draws


def test_a3c_samples_from_its_policy():
    algo = A3C()
    rng = np.random.default_rng(0)
    logits = torch.log(torch.tensor([[0.2, 0.8]]))
    acts = [algo.act((logits, None), 0, rng) for _ in range(5000)]
    assert np.mean(acts) == pytest.approx(0.8, abs=0.03)


def test_a3c_action_is_the_inverse_cdf_of_one_uniform_draw():
    """One uniform draw per step, mapped through the policy's cumulative distribution: the first
    action whose cumulative probability exceeds it. An action of probability 0 is never taken."""

    class Fixed:
        def __init__(self, u):
            self.u = u

        def random(self):
            return self.u

    algo = A3C()
    logits = torch.log(torch.tensor([[0.2, 0.3, 0.0, 0.5]]))
    picks = {u: algo.act((logits, None), 0, Fixed(u)) for u in (0.0, 0.19, 0.21, 0.49, 0.51, 0.999999)}
    assert picks == {0.0: 0, 0.19: 0, 0.21: 1, 0.49: 1, 0.51: 3, 0.999999: 3}
    rng = np.random.default_rng(1)
    counts = np.bincount([algo.act((logits, None), 0, rng) for _ in range(20000)], minlength=4)
    assert counts[2] == 0
    assert counts / counts.sum() == pytest.approx([0.2, 0.3, 0.0, 0.5], abs=0.015)
