"""Deliberately broken algorithms for tests (imported by path, e.g. tests.fixtures_algorithms:Raises)."""

from __future__ import annotations

from algorithms.a3c import A3C


class Raises(A3C):
    name = "raises"

    def loss(self, net, target_net, seg):
        raise RuntimeError("planted failure in loss")


class NaNLoss(A3C):
    name = "nan_loss"

    def loss(self, net, target_net, seg):
        loss, stats = super().loss(net, target_net, seg)
        return loss * float("nan"), stats


class FlippedPolicyGradientA3C(A3C):
    """A3C with the policy-gradient term's sign flipped (a plausible one-character bug): the value
    head still learns, the policy learns to choose worse actions. The planted regression that the
    learning gate must catch (docs/bench/gate_validation.py)."""

    name = "flipped_pg_a3c"

    def loss(self, net, target_net, seg):
        import torch
        import torch.nn.functional as F

        from algorithms.base import n_step_returns

        n = len(seg)
        logits, values = net(torch.cat([seg.obs, seg.next_obs]))
        bootstrap = 0.0 if seg.terminal else float(values[n].detach())
        R = n_step_returns(seg.rewards, bootstrap, self.hp.gamma)
        logits, values = logits[:n], values[:n]
        log_probs = F.log_softmax(logits, dim=1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=1)
        log_pi_a = log_probs.gather(1, seg.actions[:, None]).squeeze(1)
        advantage = R - values
        policy_loss = +(log_pi_a * advantage.detach()).sum() - self.hp.entropy_beta * entropy.sum()  # the bug: + for -
        value_loss = self.hp.value_loss_coef * (advantage**2).sum()
        return policy_loss + value_loss, {}
