"""The compiled loops of harness/engine/kernels.py against torch's own arithmetic and values by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.engine import kernels
from harness.engine.shared import FlatOptimizer, OptimizerState, clip_grad_norm_


def _torch_rmsprop(theta, grad, g, alpha, eps, lr):
    """The torch formula the compiled step replaced: g ← αg + (1−α)Δθ², θ ← θ − η Δθ / √(g + ε)."""
    g.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    theta.addcmul_(grad, torch.add(g, eps).rsqrt(), value=-lr)


def test_rmsprop_step_is_the_torch_formula_but_for_rounding():
    rng = np.random.default_rng(0)
    n = 100_003  # not a multiple of any vector width
    theta = rng.standard_normal(n).astype(np.float32)
    grad = (rng.standard_normal(n) * 0.3).astype(np.float32)
    g = np.abs(rng.standard_normal(n) * 0.01).astype(np.float32)
    theta0 = theta.copy()
    t_ref, g_ref = torch.from_numpy(theta.copy()), torch.from_numpy(g.copy())
    _torch_rmsprop(t_ref, torch.from_numpy(grad), g_ref, 0.99, 0.1, 7e-3)
    kernels.rmsprop_step(theta, grad, g, 0.99, 0.1, 7e-3)
    assert np.allclose(g, g_ref.numpy(), rtol=5e-7, atol=0)  # a rounding of (1 − α)Δθ² apart at most
    # division by the root where torch multiplied by its reciprocal: each update within a few of its own
    # ulps (1e-6 relative) of torch's, and θ within that plus the last bit of its own rounding
    step_ref = t_ref.numpy() - theta0
    assert np.all(np.abs(theta - t_ref.numpy()) <= np.spacing(np.abs(t_ref.numpy())) + 1e-6 * np.abs(step_ref))
    assert np.linalg.norm((theta - theta0) - step_ref) <= 1e-6 * np.linalg.norm(step_ref)


def test_momentum_step_by_hand():
    theta, m = np.array([1.0, -2.0], np.float32), np.array([0.5, 0.0], np.float32)
    kernels.momentum_step(theta, np.array([2.0, 4.0], np.float32), m, 0.9, 0.1)
    # m = 0.9·[0.5, 0] + 0.1·[2, 4] = [0.65, 0.4];  θ = θ − 0.1·m
    assert m.tolist() == pytest.approx([0.65, 0.4])
    assert theta.tolist() == pytest.approx([1.0 - 0.065, -2.0 - 0.04])


def test_sum_of_squares_and_clipping():
    x = np.random.default_rng(1).standard_normal(50_001).astype(np.float32)
    assert kernels.sum_of_squares(x) == pytest.approx(float(np.dot(x.astype(np.float64), x.astype(np.float64))), rel=1e-12)
    g = torch.tensor([30.0, 40.0, 0.0])
    assert clip_grad_norm_(g, 40.0) == pytest.approx(50.0)
    assert g.tolist() == pytest.approx([24.0, 32.0, 0.0], rel=1e-6)
    assert math.isnan(clip_grad_norm_(torch.tensor([1.0, float("nan")]), 40.0))
    assert math.isinf(clip_grad_norm_(torch.tensor([1.0, float("inf")]), 40.0))


def test_clipping_scales_as_torchs_mul_bit_for_bit():
    x = torch.from_numpy(np.random.default_rng(2).standard_normal(10_001).astype(np.float32))
    factor = 40.0 / (123.456789 + 1e-6)
    mine = x.clone()
    kernels.scale(mine.numpy(), factor)
    assert torch.equal(mine, x.clone().mul_(factor))


def test_flat_optimizer_follows_the_buffers_it_is_given():
    """The optimizer keeps the numpy views of the last (params, grad) it stepped: other buffers get theirs."""
    state = OptimizerState.allocate("shared_rmsprop", 2, threads=1)
    opt = FlatOptimizer(state, 0, 0.99, 0.1, 0.0)
    a, b = torch.zeros(2), torch.zeros(2)
    opt.step(a, torch.ones(2), 0.1)
    opt.step(b, torch.ones(2), 0.1)
    assert a.tolist() == pytest.approx([-0.1 / math.sqrt(0.11)] * 2)
    assert b.tolist() != [0.0, 0.0] and b.tolist() != a.tolist()  # b stepped, with g from the first step


def test_flat_optimizer_steps_views_of_shared_tensors_in_place():
    state = OptimizerState.allocate("shared_rmsprop", 3, threads=2)
    params = torch.zeros(3).share_memory_()
    FlatOptimizer(state, 1, 0.99, 0.1, 0.0).step(params, torch.tensor([1.0, 2.0, 0.0]), 0.1)
    assert state.stats[0].tolist() == pytest.approx([0.01, 0.04, 0.0])
    assert params.tolist() == pytest.approx([-0.1 / math.sqrt(0.11), -0.2 / math.sqrt(0.14), 0.0])


@pytest.mark.parametrize("density", [0.05, 1.0])  # MinAtar's sparse 0/1 grids, and a dense real-valued image
@pytest.mark.parametrize("channels", [4, 7])
def test_sparse_convolution_is_torchs(density, channels):
    rng = np.random.default_rng(channels)
    x = rng.random((5, 10, 10, channels)).astype(np.float32)
    x *= rng.random(x.shape) < density
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, 16, 3).double()
    w = conv.weight.detach().float().numpy().copy()
    b = conv.bias.detach().float().numpy().copy()
    out = np.full((5, 16 * 64), np.nan, np.float32)
    kernels.conv3x3_relu_forward(x, w, b, out)
    xt = torch.from_numpy(x).double().permute(0, 3, 1, 2)
    ref = torch.relu(conv(xt)).flatten(1)
    assert np.allclose(out, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    dy = torch.randn(5, 16 * 64, dtype=torch.float64)
    (ref * dy).sum().backward()
    d = (dy.numpy() * (out > 0)).astype(np.float32)
    dw, db = np.full_like(w, np.nan), np.full_like(b, np.nan)
    kernels.conv3x3_backward(x, d, dw, db)
    for fast, exact in ((dw, conv.weight.grad), (db, conv.bias.grad)):
        exact = exact.numpy()
        assert np.linalg.norm(fast - exact) <= 1e-5 * np.linalg.norm(exact)


def test_a_nan_weight_reaches_the_output_as_through_torch():
    """A diverged parameter must not be hidden by a ReLU (the engine detects divergence by a non-finite loss)."""
    x = np.zeros((1, 10, 10, 4), np.float32)
    x[0, 5, 5, 1] = 1.0
    w, b = np.zeros((16, 4, 3, 3), np.float32), np.zeros(16, np.float32)
    w[3, 1, 1, 1] = np.nan
    out = np.zeros((1, 16 * 64), np.float32)
    kernels.conv3x3_relu_forward(x, w, b, out)
    assert np.isnan(out).sum() == 1
    w1, b1 = np.full((8, 4), np.nan, np.float32), np.zeros(8, np.float32)
    h1, h2, y = kernels.mlp_forward(np.ones((1, 4), np.float32), w1, b1, np.ones((8, 8), np.float32), b1,
                                    np.ones((2, 8), np.float32), np.zeros(2, np.float32))
    assert np.isnan(h1).all() and np.isnan(h2).all() and np.isnan(y).all()


def test_one_blas_thread_finds_the_blas_libraries():
    """numpy's OpenBLAS and SciPy's (which numba's np.dot calls in the MLP kernels) are set to one thread."""
    from harness.engine.worker import one_blas_thread

    assert one_blas_thread()
