"""The per-step fast path: the built-in networks' forward and backward passes written by hand (numpy;
torch's convolution kernels for the Mnih 2013 torso), without autograd.

A worker runs its network at batch size 1 at every step and differentiates a loss of a handful of
states at every segment. In eager PyTorch each such call pays several µs of dispatch and autograd
bookkeeping per kernel whatever its arithmetic, and the learning pass recomputes the forward pass
that acting already did (θ' does not change within a segment, so the activations are the same).
The fast path removes both costs without changing what is computed:

- :class:`FastNetwork` stands in for a built-in network (``QNetwork`` or ``ActorCriticNetwork`` over
  the MLP, MinAtar or Mnih 2013 torso). It is called like the module and answers with torch tensors
  (zero-copy views of numpy results); the collector calls it with numpy rows (:meth:`act_row`), and
  it answers those in numpy where the algorithm's ``act`` takes numpy (``Algorithm.act_takes_numpy``),
  in tensors otherwise, so ``algo.act`` reads what it always read. Its weights are zero-copy numpy views of the same flat buffers the module's parameters live in (θ', or the
  shared θ⁻), so syncing θ' ← θ needs nothing more.
- The collector asks it for the outputs of s_row, row ``row`` of the segment (:meth:`act_row`); it keeps
  that call's activations (the MLP in rows of buffers it keeps, the image torsos per call), and the
  learning pass reuses them for s_0 .. s_{n-1} (and s_n when acting already saw it under θ', SARSA's
  next action). Rows acting did not see are computed at learning time.
- The algorithm gives the gradient of its loss with respect to the network's outputs
  (``Algorithm.loss_gradient``, written beside ``loss`` and pinned to autograd of ``loss`` by tests); the
  network's backward pass, written by hand here, turns it into the gradient of every parameter,
  straight into the flat gradient buffer the optimizer reads.

Autograd stays the reference and the fallback: ``engine.gradient = "autograd"`` (``--gradient
autograd``), recurrent algorithms, networks other than the built-in ones and algorithms without
``loss_gradient`` take it. A fast and a reference run of one seed take the same actions as long as
their network outputs agree to the last bit that decides an action (an argmax between near-equal
Q values, or the inverse-CDF draw of A3C's policy); numpy's float32 BLAS and torch's kernels may
sum in another order, so runs can part after a near-tie (README "The fast path").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from algorithms import networks as nets
from harness.engine import kernels


def _weights(layer, grads: bool):
    """Zero-copy numpy views of a linear or conv layer's weight and bias (and of their gradients)."""
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    if not grads:
        return w, b, None, None
    return w, b, layer.weight.grad.numpy(), layer.bias.grad.numpy()


class _Linear:
    """y = x Wᵀ + b."""

    #: layers up to this many weights (the heads) go through one compiled call; larger ones (MinAtar's
    #: FC 1024x128) through numpy's BLAS, which is faster there
    SMALL = 16_384

    def __init__(self, layer, grads: bool):
        self.w, self.b, self.dw, self.db = _weights(layer, grads)
        self.wt = self.w.T  # a view: it follows θ' as the buffer is synced in place
        self.small = self.w.size <= self.SMALL

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.small:
            return kernels.linear(x, self.w, self.b)
        y = x @ self.wt
        y += self.b
        return y

    def backward(self, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Writes dL/dW and dL/db (every parameter gets exactly one backward per gradient)."""
        np.matmul(dy.T, x, out=self.dw)
        np.sum(dy, axis=0, out=self.db)
        return dy @ self.w


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def _image(x: np.ndarray, channels_last: bool) -> np.ndarray:
    """[B, H, W, C] float32 (channel-last, as the observation comes or permuted), uint8 scaled to [0, 1]."""
    if not channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.asarray(x, dtype=np.float32)  # MinAtar's 0/1 floats: no copy


class _MLP:
    """An MLP torso (two hidden layers, ReLU) together with the head above it (Q, π's logits or V):
    forward and backward each one compiled call (``engine.kernels``). Acting writes each state's
    activations into a row of the buffers ``acts`` (x, h1, h2, y; :meth:`forward_row`), where the
    learning pass reads them back (:meth:`rows`): no second forward pass, and nothing to stack."""

    def __init__(self, torso: nets.MLPTorso, head, grads: bool):
        l1, l2 = torso._layers
        self.w1, self.b1, self.dw1, self.db1 = _weights(l1, grads)
        self.w2, self.b2, self.dw2, self.db2 = _weights(l2, grads)
        self.w3, self.b3, self.dw3, self.db3 = _weights(head, grads)
        self.widths = (self.w1.shape[1], self.w1.shape[0], self.w2.shape[0], self.w3.shape[0])  # x, h1, h2, y
        self.acts = tuple(np.zeros((8, k), dtype=np.float32) for k in self.widths)  # grown to the segment's length

    def forward(self, x):
        """The head's output [B, out] and the activations for :meth:`backward`."""
        x0 = np.ascontiguousarray(x, dtype=np.float32)  # no copy for float32 observations
        if x0.ndim != 2:
            x0 = x0.reshape(len(x0), -1)
        h1, h2, y = kernels.mlp_forward(x0, self.w1, self.b1, self.w2, self.b2, self.w3, self.b3)
        return y, (x0, h1, h2)

    def outputs(self, x):
        """The head's output alone."""
        if x.ndim != 2 or x.dtype != np.float32 or not x.flags.c_contiguous:
            return self.forward(x)[0]
        return kernels.mlp_forward(x, self.w1, self.b1, self.w2, self.b2, self.w3, self.b3)[2]

    def forward_row(self, x, row: int):
        """The head's output for one state x [1, ...], its activations kept in row ``row``."""
        acts = self.acts
        if row >= len(acts[0]):
            rows = max(row + 1, 2 * len(acts[0]))
            self.acts = acts = tuple(np.concatenate((a, np.zeros((rows - len(a), a.shape[1]), np.float32))) for a in acts)
        if x.ndim != 2:
            x = x.reshape(1, -1)
        return kernels.mlp_forward_row(x, self.w1, self.b1, self.w2, self.b2, self.w3, self.b3, *acts, row)

    def rows(self, n: int):
        """Rows 0 .. n-1 as :meth:`forward` returns them (views of ``acts``)."""
        x, h1, h2, y = self.acts
        return y[:n], (x[:n], h1[:n], h2[:n])

    def backward(self, cache, dy):
        x0, h1, h2 = cache
        kernels.mlp_backward(x0, h1, h2, np.ascontiguousarray(dy, dtype=np.float32), self.w2, self.w3,
                             self.dw1, self.db1, self.dw2, self.db2, self.dw3, self.db3)


class _SmallImage:
    """MinAtar's network: conv 16 3x3/1, FC 128. The convolution is compiled (``engine.kernels``): it
    scatters each non-zero cell of the grid into the outputs it lies under, in torch's flatten order,
    and its backward pass gathers the same way."""

    def __init__(self, torso: nets.SmallImageTorso, grads: bool):
        self.channels_last = torso.channels_last
        conv, fc = torso._layers
        self.w, self.b, self.dw, self.db = _weights(conv, grads)  # [16, C, 3, 3]: views of θ' (and dθ)
        self.fc = _Linear(fc, grads)
        self.out_dim = conv.out_channels

    def forward(self, x):
        img = _image(x, self.channels_last)
        img = np.array(img, dtype=np.float32, order="C")  # kept for the backward pass: a copy, not the collector's row
        b, h, w, _ = img.shape
        flat = np.empty((b, self.out_dim * (h - 2) * (w - 2)), dtype=np.float32)
        kernels.conv3x3_relu_forward(img, self.w, self.b, flat)  # relu(conv(x)), flattened as torch does
        return _relu(self.fc(flat)), (img, flat)

    def backward(self, cache, out, dout):
        img, flat = cache
        dflat = self.fc.backward(flat, dout * (out > 0))
        kernels.conv3x3_backward(img, dflat * (flat > 0), self.dw, self.db)


class _AtariTorch:
    """Mnih et al. 2013 (conv 16 8x8/4, conv 32 4x4/2, FC 256) on torch's own convolution kernels,
    which are faster at 84x84 than an im2col in numpy, with the backward pass written by hand from the
    saved activations (``aten.convolution_backward``, matrix products into the gradient views): no
    autograd graph, no second forward pass. Activations are kept as numpy views of the tensors."""

    def __init__(self, torso: nets.AtariTorso, grads: bool):
        self.channels_last = torso.channels_last
        c1, c2, fc = torso._layers
        self.w = [layer.weight.detach() for layer in (c1, c2, fc)]  # views of θ' (or θ⁻)
        self.b = [layer.bias.detach() for layer in (c1, c2, fc)]
        self.dw = [layer.weight.grad for layer in (c1, c2, fc)] if grads else None
        self.db = [layer.bias.grad for layer in (c1, c2, fc)] if grads else None

    def forward(self, x):
        F = torch.nn.functional
        with torch.no_grad():
            img = nets.as_image_batch(torch.from_numpy(x), self.channels_last)
            h1 = F.conv2d(img, self.w[0], self.b[0], stride=4).relu_()
            h2 = F.conv2d(h1, self.w[1], self.b[1], stride=2).relu_()
            flat = h2.flatten(1)
            out = F.linear(flat, self.w[2], self.b[2]).relu_()
        return out.numpy(), (img.contiguous().numpy(), h1.numpy(), h2.numpy())

    def backward(self, cache, out, dout):
        img, h1, h2 = (torch.from_numpy(a) for a in cache)
        conv_backward = torch.ops.aten.convolution_backward
        with torch.no_grad():
            d = torch.from_numpy(dout * (out > 0))
            flat = h2.flatten(1)
            torch.mm(d.t(), flat, out=self.dw[2])
            torch.sum(d, 0, out=self.db[2])
            dh2 = torch.mm(d, self.w[2]).view_as(h2).mul_(h2 > 0)
            dh1, dw, db = conv_backward(dh2, h1, self.w[1], [self.w[1].shape[0]], [2, 2], [0, 0], [1, 1],
                                        False, [0, 0], 1, [True, True, True])
            self.dw[1].copy_(dw)
            self.db[1].copy_(db)
            dh1.mul_(h1 > 0)
            _, dw, db = conv_backward(dh1, img, self.w[0], [self.w[0].shape[0]], [4, 4], [0, 0], [1, 1],
                                      False, [0, 0], 1, [False, True, True])
            self.dw[0].copy_(dw)
            self.db[0].copy_(db)


_TORSOS = {nets.SmallImageTorso: _SmallImage, nets.AtariTorso: _AtariTorch}  # MLP torsos: with their heads, _MLP


def _torso(module, grads: bool):
    kind = _TORSOS.get(type(module))
    return None if kind is None else kind(module, grads)


class _Cache:
    """The activations of a forward pass over a batch of states: per torso, its cache and output."""

    __slots__ = ("parts",)

    def __init__(self, parts: list):
        self.parts = parts  # [(cache, output) per torso]

    def rows(self, k: int) -> _Cache:
        """The activations of the first ``k`` states (views)."""
        return _Cache([(tuple(c[:k] for c in cache), out[:k]) for cache, out in self.parts])

    @staticmethod
    def stack(rows: list[_Cache]) -> _Cache:
        """One batch from batch-1 caches, in order."""
        parts = []
        for k in range(len(rows[0].parts)):
            caches = [r.parts[k][0] for r in rows]
            cache = tuple(np.concatenate([c[i] for c in caches]) for i in range(len(caches[0])))
            parts.append((cache, np.concatenate([r.parts[k][1] for r in rows])))
        return _Cache(parts)


class FastNetwork:
    """A built-in network's numpy twin (module doc). ``FastNetwork.of(net)`` is None for any other
    network. Called with a torch batch it returns what the module returns (as tensors viewing numpy
    arrays); :meth:`forward` and :meth:`backward` work on numpy arrays."""

    def __init__(self, module, grads: bool):
        self.module = module
        self.actor_critic = isinstance(module, nets.ActorCriticNetwork)
        self.fused = type(module.torso) is nets.MLPTorso  # each MLP torso and its head are one _MLP
        if self.fused:
            if self.actor_critic:  # vectors: a torso per head
                self.torso = _MLP(module.torso, module.policy, grads)
                self.value_torso = _MLP(module.value_torso, module.value, grads)
            else:
                self.torso, self.value_torso = _MLP(module.torso, module.q, grads), None
            self.heads = ()
            self._torsos = (self.torso,) if self.value_torso is None else (self.torso, self.value_torso)
            self._kept: set[int] = set()  # the rows whose activations the torsos hold under this θ'
        elif self.actor_critic:
            self.torso = _torso(module.torso, grads)
            self.value_torso = None if module.value_torso is None else _torso(module.value_torso, grads)
            self.heads = (_Linear(module.policy, grads), _Linear(module.value, grads))
        else:
            self.torso, self.value_torso = _torso(module.torso, grads), None
            self.heads = (_Linear(module.q, grads),)
        self._rows: dict[int, tuple[np.ndarray, _Cache]] = {}  # segment row -> (the state, its activations)

    @classmethod
    def of(cls, module, grads: bool = True) -> FastNetwork | None:
        """The fast twin of a built-in network (exactly ``QNetwork`` or ``ActorCriticNetwork`` over a
        built-in torso), or None. ``grads``: whether it will run backward passes (its parameters must
        then have their flat gradient attached)."""
        if type(module) not in (nets.QNetwork, nets.ActorCriticNetwork):
            return None
        value_torso = type(getattr(module, "value_torso", None))
        if type(module.torso) is nets.MLPTorso:  # an actor-critic needs its value torso, an MLP too
            ok = value_torso is nets.MLPTorso or type(module) is nets.QNetwork
        else:
            ok = type(module.torso) in _TORSOS and (value_torso is type(None) or value_torso in _TORSOS)
        return cls(module, grads) if ok else None

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> tuple[Any, _Cache]:
        """The outputs for a numpy batch of observations (Q [B, A], or (logits [B, A], V [B])) and
        the activations the backward pass needs."""
        if self.fused:
            y, cache = self.torso.forward(x)
            if not self.actor_critic:
                return y, _Cache([(cache, y)])
            v, vcache = self.value_torso.forward(x)
            return (y, v[:, 0]), _Cache([(cache, y), (vcache, v)])
        h, cache = self.torso.forward(x)
        if not self.actor_critic:
            return self.heads[0](h), _Cache([(cache, h)])
        parts = [(cache, h)]
        hv = h
        if self.value_torso is not None:
            hv, vcache = self.value_torso.forward(x)
            parts.append((vcache, hv))
        return (self.heads[0](h), self.heads[1](hv)[:, 0]), _Cache(parts)

    def outputs(self, x: np.ndarray):
        if self.fused:  # without the activations
            if not self.actor_critic:
                return self.torso.outputs(x)
            return self.torso.outputs(x), self.value_torso.outputs(x)[:, 0]
        return self.forward(x)[0]

    #: answer a numpy input with numpy outputs (set by :func:`fast_learner` for an algorithm whose ``act``
    #: takes them, ``Algorithm.act_takes_numpy``); tensors otherwise, as the module answers
    numpy_outputs = False

    def __call__(self, x: torch.Tensor | np.ndarray):
        out = self.outputs(x if type(x) is np.ndarray else x.numpy())
        return out if self.numpy_outputs and type(x) is np.ndarray else self._tensors(out)

    def act_row(self, x: np.ndarray, row: int):
        """The outputs for s_row (``x``, one state as a numpy batch of one, a row of the collector's buffer:
        a tensor's ``.numpy()`` costs a µs a step), as :meth:`__call__` gives them, with its activations
        kept for the learning pass (:meth:`segment_forward`)."""
        if self.fused:  # MLP torsos: kept in place, in row ``row`` of their buffers (_MLP.forward_row)
            self._kept.add(row)
            out = self.torso.forward_row(x, row)
            if self.actor_critic:
                out = out, self.value_torso.forward_row(x, row)[:, 0]
        else:
            out, cache = self.forward(x)
            self._rows[row] = (x, cache)
        return out if self.numpy_outputs else self._tensors(out)

    def _tensors(self, out):
        if self.actor_critic:
            return torch.from_numpy(out[0]), torch.from_numpy(out[1])
        return torch.from_numpy(out)

    def __getattr__(self, name):  # anything else (parameters(), training, ...) is the module's
        return getattr(self.module, name)

    # -- the activations acting computed, reused by the learning pass --------------------------
    def begin_segment(self) -> None:
        """θ' may have changed: forget the activations of the last segment."""
        self._rows.clear()
        if self.fused:
            self._kept.clear()

    def kept_rows(self) -> set[int]:
        """The segment rows whose activations under this θ' are kept for the learning pass."""
        return set(self._kept) if self.fused else set(self._rows)

    def recorded(self) -> dict:
        """The activations recorded since :meth:`begin_segment`, with a copy of the states they are for
        (to hand back with :meth:`restore`)."""
        if self.fused:
            return {"kept": set(self._kept), "acts": [tuple(a.copy() for a in t.acts) for t in self._torsos]}
        return {i: (np.array(x), cache) for i, (x, cache) in self._rows.items()}

    def restore(self, recorded: dict) -> None:
        if self.fused:
            self._kept = set(recorded["kept"])
            for t, acts in zip(self._torsos, recorded["acts"]):
                t.acts = tuple(a.copy() for a in acts)
            return
        self._rows = dict(recorded)

    def segment_forward(self, states: np.ndarray) -> tuple[Any, _Cache]:
        """Outputs and activations for the segment's states ``states`` (s_0 .. s_k) under this θ'
        (acting's, unchanged since :meth:`begin_segment`): rows acting recorded for these very
        observations are reused, the others computed now."""
        if self.fused:
            return self._fused_segment_forward(states)
        rows = self._rows
        if not rows:
            return self.forward(states)
        caches = []
        for i in range(len(states)):
            kept = rows.get(i)
            if kept is None or kept[0].tobytes() != states[i : i + 1].tobytes():  # a memcmp: the state acting saw
                kept = rows[i] = (states[i : i + 1], self.forward(states[i : i + 1])[1])
            caches.append(kept[1])
        cache = _Cache.stack(caches)
        return self._heads(cache), cache

    def _fused_segment_forward(self, states: np.ndarray):
        n, kept = len(states), self._kept
        for i in range(n):
            if i not in kept:  # a state acting did not see under this θ' (A3C's s_n, SARSA's carried s_0)
                kept.add(i)
                for torso in self._torsos:
                    torso.forward_row(states[i : i + 1], i)
        x = states.reshape(n, -1)
        if x.dtype != np.float32 or self.torso.acts[0][:n].tobytes() != x.tobytes():  # not the states acting saw
            kept.clear()
            return self.forward(states)
        parts = [(cache, y) for y, cache in (torso.rows(n) for torso in self._torsos)]
        if not self.actor_critic:
            return parts[0][1], _Cache(parts)
        return (parts[0][1], parts[1][1][:, 0]), _Cache(parts)

    def _heads(self, cache: _Cache):
        h = cache.parts[0][1]
        if not self.actor_critic:
            return self.heads[0](h)
        hv = cache.parts[-1][1] if self.value_torso is not None else h
        return self.heads[0](h), self.heads[1](hv)[:, 0]

    # -- backward -----------------------------------------------------------------------------
    def backward(self, cache: _Cache, d_out) -> None:
        """Writes dL/dθ' for every parameter into the flat gradient (through the parameters' ``.grad``
        views), given dL/d(outputs) in the layout :meth:`forward` returns."""
        if self.fused:
            if not self.actor_critic:
                self.torso.backward(cache.parts[0][0], d_out)
                return
            d_logits, d_v = d_out
            self.torso.backward(cache.parts[0][0], d_logits)
            self.value_torso.backward(cache.parts[1][0], d_v[:, None])
            return
        (tcache, h) = cache.parts[0]
        if not self.actor_critic:
            self.torso.backward(tcache, h, self.heads[0].backward(h, d_out))
            return
        d_logits, d_v = d_out
        policy, value = self.heads
        dh = policy.backward(h, d_logits)
        if self.value_torso is None:  # one torso under both heads
            dh += value.backward(h, d_v[:, None])
            self.torso.backward(tcache, h, dh)
            return
        vcache, hv = cache.parts[1]
        self.torso.backward(tcache, h, dh)
        self.value_torso.backward(vcache, hv, value.backward(hv, d_v[:, None]))


def _defined_by(cls: type, name: str) -> type:
    return next(c for c in cls.__mro__ if name in c.__dict__)


def supports(algo) -> bool:
    """Whether ``algo`` provides the gradient of its own loss with respect to the network's outputs:
    a ``loss_gradient`` defined where its ``loss`` is, or below. A subclass of a built-in method that
    overrides ``loss`` (A3C with GAE, a broken loss in a test) and not ``loss_gradient`` inherits a
    gradient of its parent's loss, so it is trained through autograd of its own."""
    from algorithms.base import Algorithm

    if algo.recurrent:
        return False
    grad_cls = _defined_by(type(algo), "loss_gradient")
    return grad_cls is not Algorithm and issubclass(grad_cls, _defined_by(type(algo), "loss"))


def fast_learner(algo, net, target_net, enabled: bool = True):
    """``(fast net, fast target)`` for the fast path, or ``(None, None)`` where it does not apply."""
    if not enabled or not supports(algo):
        return None, None
    fnet = FastNetwork.of(net, grads=True)
    if fnet is None:
        return None, None
    fnet.numpy_outputs = bool(getattr(algo, "act_takes_numpy", False))
    ftarget = None
    if target_net is not None:
        ftarget = FastNetwork.of(target_net, grads=False)
        if ftarget is None:
            return None, None
    return fnet, ftarget


def fast_gradient(pairs: list, fnet: FastNetwork, ftarget: FastNetwork | None) -> float:
    """Writes the gradient of the mean of the segments' losses into the flat gradient and returns the
    loss value. ``pairs``: ``(algo, segment)``, all taken at the same θ'. One segment reuses the
    activations acting recorded; several are forwarded as one batch."""
    target = None if ftarget is None else ftarget.outputs
    inputs = [s.numpy().states if a.loss_needs_next_output else s.numpy().obs for a, s in pairs]
    if len(pairs) == 1:  # one actor-learner's segment: acting's activations, and no mean to take
        algo, seg = pairs[0]
        out, cache = fnet.segment_forward(inputs[0])
        loss, d_out = algo.loss_gradient(out, target, seg)
        n = len(seg)
        # s_n's row (A3C's bootstrap) has a zero gradient: the image networks skip its backward pass (a
        # sixth of Pong's); for the MLP the test and the slicing cost more than the row
        if algo.loss_needs_next_output and not fnet.fused and not any(np.any(d[n:]) for d in _members(d_out)):
            cache, d_out = cache.rows(n), _rows(d_out, 0, n)
        fnet.backward(cache, d_out)
        return loss
    out, cache = fnet.forward(np.concatenate(inputs))
    grads, loss, start = [], 0.0, 0
    scale = 1.0 / len(pairs)
    for (algo, seg), x in zip(pairs, inputs):
        rows = _rows(out, start, start + len(x))
        start += len(x)
        value, d = algo.loss_gradient(rows, target, seg)
        loss += value * scale
        grads.append(d)
    if fnet.actor_critic:
        d_out = tuple(np.concatenate([g[k] for g in grads]) * np.float32(scale) for k in range(2))
    else:
        d_out = np.concatenate(grads) * np.float32(scale)
    fnet.backward(cache, d_out)
    return loss


def _members(out) -> tuple:
    return out if isinstance(out, tuple) else (out,)


def _rows(out, start: int, stop: int):
    if isinstance(out, tuple):
        return tuple(o[start:stop] for o in out)
    return out[start:stop]
