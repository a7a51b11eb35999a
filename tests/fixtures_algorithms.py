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
