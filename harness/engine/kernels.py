"""Compiled loops (numba) for the fast path: the work numpy or torch would do as many small calls.

A call costs about a µs here whatever its size, and at batch size 1 most of the fast path's calls are
small. Compiled here:

- the optimizer step. Written as torch calls, shared RMSProp is five passes over the model (``mul_``,
  ``addcmul_``, ``add``, ``rsqrt_``, ``addcmul_``); :func:`rmsprop_step` is one loop that reads Δθ, g
  and θ once and writes g and θ once: 40 against 112 µs on MinAtar's network (132k parameters),
  in-process on the 2-vCPU EPYC guest (docs/BENCHMARKS.md). Every gradient path uses it;
- the gradient's norm for clipping (:func:`sum_of_squares`), and the clipping (:func:`scale`);
- MinAtar's convolution (:func:`conv3x3_relu_forward`, :func:`conv3x3_backward`), from the grid's
  non-zero cells (:func:`_taps`);
- an MLP torso with its head (:func:`mlp_forward`, :func:`mlp_backward`), and the image torsos' small
  heads (:func:`linear`).

The arithmetic is float32 without fast-math approximations of functions; sums may be taken in
another order than torch's (``reassoc``), and the optimizer divides by √(g + ε) where torch
multiplied by its ``rsqrt``: each update within a rounding of torch's (tests/test_kernels.py pins
every function against torch). The buffers are the shared ones, updated in place without locks
(Hogwild!), as before.

Functions compile on first use and are cached on disk (numba's ``cache=True``: ``__pycache__`` beside
this file, or numba's user cache where that is read-only), so a worker loads them in milliseconds.
"""

from __future__ import annotations

import numpy as np
from numba import float32, njit


@njit(cache=True, error_model="numpy")
def rmsprop_step(theta, grad, g, alpha, eps, lr):  # pragma: no cover - compiled
    """g ← αg + (1−α)Δθ²;  θ ← θ − η Δθ / √(g + ε), element by element, in place."""
    a = float32(alpha)
    b = float32(1.0 - alpha)  # (1 − α) rounded once, as torch rounds its scalar
    e = float32(eps)
    step = float32(lr)
    for i in range(theta.size):
        d = grad[i]
        gi = a * g[i] + b * (d * d)
        g[i] = gi
        theta[i] -= step * d / np.sqrt(gi + e)


@njit(cache=True, error_model="numpy")
def momentum_step(theta, grad, m, alpha, lr):  # pragma: no cover - compiled
    """m ← αm + (1−α)Δθ;  θ ← θ − η m, in place."""
    a = float32(alpha)
    b = float32(1.0 - alpha)  # (1 − α) rounded once, as torch rounds its scalar
    step = float32(lr)
    for i in range(theta.size):
        mi = a * m[i] + b * grad[i]
        m[i] = mi
        theta[i] -= step * mi


@njit(cache=True, fastmath={"reassoc", "nsz"})
def sum_of_squares(x):  # pragma: no cover - compiled
    """Σ x², accumulated in float64 (the order of the sum is the compiler's: ``reassoc`` lets it vectorise)."""
    s = 0.0
    for i in range(x.size):
        v = np.float64(x[i])
        s += v * v
    return s


@njit(cache=True, error_model="numpy")
def scale(x, factor):  # pragma: no cover - compiled
    """x ← x · factor in place, factor rounded to float32 once (as torch's ``mul_`` by a Python float)."""
    f = float32(factor)
    for i in range(x.size):
        x[i] *= f


@njit(cache=True)
def _taps(x, bi, k, ho, wo):  # pragma: no cover - compiled
    """Where grid ``bi`` of x [B, H, W, C] meets a k×k kernel: for each non-zero input x[i, j, c] and
    each output (i − kh, j − kw) it lies under, that output's index in the H'×W' plane, the weight's
    index c·k·k + kh·k + kw, and the input's value."""
    _, h, wd, c = x.shape
    n = 0
    for i in range(h):
        for j in range(wd):
            for ci in range(c):
                if x[bi, i, j, ci] != 0:
                    n += 1
    out = np.empty(n * k * k, dtype=np.int64)
    tap = np.empty(n * k * k, dtype=np.int64)
    val = np.empty(n * k * k, dtype=x.dtype)
    m = 0
    for i in range(h):
        for j in range(wd):
            for ci in range(c):
                v = x[bi, i, j, ci]
                if v == 0:
                    continue
                for kh in range(k):
                    oi = i - kh
                    for kw in range(k):
                        oj = j - kw
                        if 0 <= oi < ho and 0 <= oj < wo:
                            out[m], tap[m], val[m] = oi * wo + oj, (ci * k + kh) * k + kw, v
                            m += 1
    return out[:m], tap[:m], val[:m]


@njit(cache=True, error_model="numpy")
def conv3x3_relu_forward(x, w, b, out):  # pragma: no cover - compiled
    """MinAtar's convolution (stride 1, no padding) and ReLU, scattered from the non-zero inputs.

    x: [B, H, W, C] channel-last; w: [O, C, k, k] (torch's layout); b: [O]; out: [B, O·H'·W'], written
    in torch's flatten order of [B, O, H', W'] (what the FC layer takes). Each non-zero input x[i, j, c]
    adds x·w[o, c, kh, kw] to the outputs (i − kh, j − kw) it lies under (:func:`_taps`): MinAtar's grids
    hold a few dozen ones among hundreds of zeros, so this is ~20× less arithmetic than the dense
    product, and equal to it but for the order of the sums."""
    n_b, h, wd, _ = x.shape
    n_o, k = w.shape[0], w.shape[2]
    ho, wo = h - k + 1, wd - k + 1
    plane = ho * wo
    wt = np.ascontiguousarray(w.reshape(n_o, -1).T)  # [C·k·k, O]: the output channel innermost
    acc = np.empty((plane, n_o), dtype=out.dtype)
    for bi in range(n_b):
        for p in range(plane):
            for o in range(n_o):
                acc[p, o] = b[o]
        at, tap, val = _taps(x, bi, k, ho, wo)
        for t in range(at.size):
            p, q, v = at[t], tap[t], val[t]
            for o in range(n_o):
                acc[p, o] += v * wt[q, o]
        for o in range(n_o):
            for p in range(plane):
                a = acc[p, o]
                out[bi, o * plane + p] = 0 if a < 0 else a  # a NaN passes, as through torch's ReLU


@njit(cache=True, error_model="numpy")
def conv3x3_backward(x, d, dw, db):  # pragma: no cover - compiled
    """dL/dW and dL/db of :func:`conv3x3_relu_forward` given d = dL/d(pre-activation) [B, O·H'·W']
    (the ReLU's mask already applied), from the same taps: dW[o, c, kh, kw] = Σ x[i, j, c]·d[o, i − kh, j − kw]."""
    n_b, h, wd, c = x.shape
    n_o, k = dw.shape[0], dw.shape[2]
    ho, wo = h - k + 1, wd - k + 1
    plane = ho * wo
    acc = np.zeros((c * k * k, n_o), dtype=dw.dtype)  # dWᵀ, the output channel innermost
    sums = np.zeros(n_o, dtype=db.dtype)
    dt = np.empty((plane, n_o), dtype=d.dtype)
    for bi in range(n_b):
        for o in range(n_o):
            for p in range(plane):
                dt[p, o] = d[bi, o * plane + p]
        for p in range(plane):
            for o in range(n_o):
                sums[o] += dt[p, o]
        at, tap, val = _taps(x, bi, k, ho, wo)
        for t in range(at.size):
            p, q, v = at[t], tap[t], val[t]
            for o in range(n_o):
                acc[q, o] += v * dt[p, o]
    dw2 = dw.reshape(n_o, -1)
    for o in range(n_o):
        db[o] = sums[o]
        for q in range(c * k * k):
            dw2[o, q] = acc[q, o]


_DENSE = dict(cache=True, error_model="numpy", fastmath={"reassoc", "nsz", "contract"})


@njit(**_DENSE)
def _dense_vector(x, w, b, relu, y):  # pragma: no cover - compiled
    """y = W x + b for one state x [in], W [out, in], written into y [out]; its ReLU when ``relu``
    (a NaN passes through, as torch's ReLU lets it)."""
    n_o, n_in = w.shape
    for j in range(n_o):
        s = b[j]
        for i in range(n_in):
            s += w[j, i] * x[i]
        y[j] = 0 if relu and s < 0 else s


@njit(**_DENSE)
def _dense(x, w, b, relu):  # pragma: no cover - compiled
    """x Wᵀ + b for x [B, in], W [out, in], and its ReLU when ``relu``."""
    y = np.empty((x.shape[0], w.shape[0]), dtype=np.float32)
    for bi in range(x.shape[0]):
        _dense_vector(x[bi], w, b, relu, y[bi])
    return y


@njit(**_DENSE)
def _weight_gradient(da, x, dw, db):  # pragma: no cover - compiled
    """dW = daᵀ x (BLAS) and db = Σ_b da_b, written in place."""
    np.dot(da.T, x, dw)
    for j in range(db.size):
        s = float32(0)
        for bi in range(da.shape[0]):
            s += da[bi, j]
        db[j] = s


@njit(**_DENSE)
def _dense_batch(x, w, b, relu):  # pragma: no cover - compiled
    """x Wᵀ + b (BLAS) for a batch x [B, in], and its ReLU when ``relu`` (a NaN passes)."""
    y = np.dot(x, w.T)
    for bi in range(y.shape[0]):
        for j in range(y.shape[1]):
            v = y[bi, j] + b[j]
            y[bi, j] = 0 if relu and v < 0 else v
    return y


@njit(**_DENSE)
def _relu_backward(d, h):  # pragma: no cover - compiled
    """d ← 0 where the ReLU's output h is ≤ 0, in place (a select, not a branch: which units are off
    changes from state to state, and a mispredicted branch per unit cost more than the product)."""
    for bi in range(d.shape[0]):
        for j in range(d.shape[1]):
            d[bi, j] = 0 if h[bi, j] <= 0 else d[bi, j]


@njit(**_DENSE)
def linear(x, w, b):  # pragma: no cover - compiled
    """y = x Wᵀ + b for a small layer (the heads: a µs less a call than numpy's product and add)."""
    return _dense(x, w, b, False)


@njit(**_DENSE)
def mlp_forward(x, w1, b1, w2, b2, w3, b3):  # pragma: no cover - compiled
    """An MLP torso and its head, h1 = relu(x W1ᵀ + b1), h2 = relu(h1 W2ᵀ + b2), y = h2 W3ᵀ + b3, for a
    batch x [B, in] (C-contiguous): one call where numpy takes nine (a µs each, whatever their size).
    The products are BLAS's (numba's ``np.dot``). Returns (h1, h2, y)."""
    h1 = _dense_batch(x, w1, b1, True)
    h2 = _dense_batch(h1, w2, b2, True)
    return h1, h2, _dense_batch(h2, w3, b3, False)


@njit(**_DENSE)
def mlp_forward_row(x, w1, b1, w2, b2, w3, b3, xs, h1s, h2s, ys, row):  # pragma: no cover - compiled
    """:func:`mlp_forward` for one state x [1, in] (acting), with x, h1, h2 and y written into row ``row``
    of ``xs``, ``h1s``, ``h2s`` and ``ys``, where the learning pass reads them back instead of computing
    them again (C-contiguous buffers: the backward pass vectorises over them). Returns y as a new
    [1, out] array."""
    xs[row] = x[0]
    _dense_vector(xs[row], w1, b1, True, h1s[row])
    _dense_vector(h1s[row], w2, b2, True, h2s[row])
    _dense_vector(h2s[row], w3, b3, False, ys[row])
    return ys[row : row + 1].copy()


@njit(**_DENSE)
def mlp_backward(x, h1, h2, dy, w2, w3, dw1, db1, dw2, db2, dw3, db3):  # pragma: no cover - compiled
    """dL/dW and dL/db of :func:`mlp_forward`'s three layers, written in place, given dL/dy: six BLAS
    products (on a segment of 5 states a third of the time of loops that skipped the units a ReLU
    turned off, whose branches mispredict as the states change)."""
    da2 = np.dot(dy, w3)  # dL/dh2
    _relu_backward(da2, h2)
    da1 = np.dot(da2, w2)  # dL/dh1
    _relu_backward(da1, h1)
    _weight_gradient(dy, h2, dw3, db3)
    _weight_gradient(da2, h1, dw2, db2)
    _weight_gradient(da1, x, dw1, db1)
