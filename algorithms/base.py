"""The algorithm contract: what a method owns, and nothing of what the engine owns.

An algorithm owns its network heads, its action selection and its loss. The engine
(``harness.engine``) owns processes, shared parameters, the optimizer, the frame counter T, the
target network, gradient clipping and the learning-rate schedule. They meet in five calls::

    net = algo.build_network(obs_space, n_actions)        # once per process
    algo.init_worker(worker_index, rng)                   # per worker: e.g. its final epsilon
    algo.start_episode(rng)                               # at the start of each of the worker's episodes
    a   = algo.act(net_output, frames, rng)               # each step, from net(obs[None]) under no_grad
    loss, stats = algo.loss(net, target_net, segment)     # each segment; the engine backprops it

A segment is what one worker collected since its last update: states s_0..s_{n-1}, actions,
rewards (clipped for learning) and the state s_n it ended in, with ``terminal`` telling whether the
episode ended there (no bootstrap). Segments end after ``t_max`` steps or at the end of an episode,
so only the last transition can be terminal.

Recurrent algorithms (``recurrent = True``, e.g. A3C-LSTM) carry a network state from step to step.
Their network is called as ``out, state = net(obs[None], state)``; the engine starts every episode
of a worker (and of an evaluation) from ``algo.initial_state(net)``, carries the state through
acting, and stores in ``segment.state`` the state the segment's first step was taken from (no
gradient through it), so that ``loss`` re-runs the segment from it: truncated backpropagation
through time over the segment. Each worker keeps its own state; feed-forward algorithms are called
as ``net(obs[None])`` and their segments have ``state = None``.

A new algorithm subclasses :class:`Algorithm`, declares a ``Hyperparameters`` dataclass (with
``lr`` defaults per observation kind in ``default_lr``) and registers itself with :func:`register`
or through the ``harness.algorithms`` entry-point group.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from numba import njit
from torch import nn


class SegmentArrays(NamedTuple):
    """A segment as numpy arrays (``Segment.numpy``), for ``loss_gradient``: views of the segment's own
    memory where they can be."""

    obs: np.ndarray  # [n, *obs_shape]: s_0 .. s_{n-1}
    actions: np.ndarray  # [n] int64
    rewards: np.ndarray  # [n] float32
    states: np.ndarray  # [n + 1, *obs_shape]: s_0 .. s_n (``successors`` is states[1:])


@dataclass
class Segment:
    """Up to t_max transitions of one worker, oldest first."""

    obs: torch.Tensor  # [n, *obs_shape]: s_0 .. s_{n-1}
    actions: torch.Tensor  # [n] int64
    rewards: torch.Tensor  # [n] float32, clipped for learning when the run clips rewards
    next_obs: torch.Tensor  # [1, *obs_shape]: s_n, the state after the last action
    terminal: bool  # s_n is terminal: bootstrap with 0
    next_action: int | None = None  # action chosen in s_n (only for algorithms with needs_next_action)
    state: Any = None  # recurrent algorithms: the network state s_0's step was taken from (detached)
    #: the arrays :meth:`numpy` returns, made on first use (the engine's collector gives them, as views
    #: of its buffer; not an argument, so ``dataclasses.replace`` never carries stale ones over)
    arrays: SegmentArrays | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def successors(self) -> torch.Tensor:
        """s_1 .. s_n: the state after each transition, [n, *obs_shape]."""
        return torch.cat([self.obs[1:], self.next_obs], dim=0)

    def numpy(self) -> SegmentArrays:
        """The segment as numpy arrays (for ``loss_gradient``): each ``.numpy()`` of a tensor costs a µs."""
        if self.arrays is None:
            obs = self.obs.numpy()
            self.arrays = SegmentArrays(obs, self.actions.numpy(), self.rewards.numpy(),
                                        np.concatenate((obs, self.next_obs.numpy())))
        return self.arrays


@dataclass
class Hyperparameters:
    """Hyperparameters every built-in method shares; subclasses add their own fields."""

    gamma: float = 0.99
    t_max: int = 5  # steps per segment (t_max, or I_AsyncUpdate for the one-step methods)


class Algorithm:
    """Base class of the four built-in methods and of plug-ins."""

    name: ClassVar[str] = ""
    Hyperparameters: ClassVar[type] = Hyperparameters
    #: the engine keeps a shared target network θ⁻ (copied from θ every target_update_frames)
    uses_target_network: ClassVar[bool] = False
    #: the engine chooses the action in s_n before the update and then takes it (SARSA)
    needs_next_action: ClassVar[bool] = False
    #: the network carries a state across steps: called as net(obs, state) -> (out, state) (module doc)
    recurrent: ClassVar[bool] = False
    #: default initial learning rate per observation kind ("image" or "vector")
    default_lr: ClassVar[dict[str, float]] = {"image": 7e-4, "vector": 1e-3}
    #: hyperparameter defaults that differ for vector observations (short runs on small tasks)
    vector_defaults: ClassVar[dict[str, Any]] = {}
    #: ``act`` and ``act_eval`` accept the network's outputs as numpy arrays as well as tensors, in the
    #: same layout: on the fast path the engine then hands ``act`` numpy arrays (a tensor made and
    #: read back costs about a µs a step); others always get tensors
    act_takes_numpy: ClassVar[bool] = False

    def __init__(self, hp: Any | None = None):
        self.hp = hp if hp is not None else self.Hyperparameters()

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def make_hyperparameters(cls, obs_kind: str, overrides: dict[str, Any] | None = None) -> Any:
        """Defaults for the observation kind, then the user's overrides (unknown keys raise)."""
        values = dict(cls.vector_defaults) if obs_kind == "vector" else {}
        values.update(overrides or {})
        names = {f.name for f in dataclasses.fields(cls.Hyperparameters)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {', '.join(unknown)} for {cls.name}; "
                f"allowed: {', '.join(sorted(names))}"
            )
        return cls.Hyperparameters(**values)

    def build_network(self, obs_space: Any, n_actions: int) -> nn.Module:
        raise NotImplementedError

    def init_worker(self, worker_index: int, rng: np.random.Generator) -> None:
        """Per-worker state (exploration). Called once in each worker process."""

    def start_episode(self, rng: np.random.Generator) -> None:
        """Called by the engine at the start of every training episode of this worker, the first
        included (after ``init_worker``); e.g. to resample exploration. A game is one episode, also
        with ``terminal_on_life_loss``."""

    def initial_state(self, net: nn.Module, batch: int = 1) -> Any:
        """Recurrent algorithms: the network state at the start of an episode (``batch`` agents)."""
        return None

    # -- acting -----------------------------------------------------------------------------
    def act(self, out: Any, frames: int, rng: np.random.Generator) -> int:
        """Behaviour policy: choose an action from the network output for one state."""
        raise NotImplementedError

    def act_eval(self, out: Any, rng: np.random.Generator) -> int:
        """Evaluation policy."""
        raise NotImplementedError

    # -- learning ---------------------------------------------------------------------------
    def loss(
        self, net: nn.Module, target_net: nn.Module | None, seg: Segment
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The segment's loss; the engine calls backward() on it and applies the gradient."""
        raise NotImplementedError

    #: ``loss`` uses the network's own output at s_n (A3C's bootstrap V(s_n; θ')), so the fast path
    #: gives ``loss_gradient`` the outputs at s_0 .. s_n rather than s_0 .. s_{n-1}
    loss_needs_next_output: ClassVar[bool] = False

    def loss_gradient(self, out: Any, target: Any, seg: Segment) -> tuple[float, Any]:
        """Optional: ``loss``'s value and its gradient with respect to the network's outputs, in numpy,
        for the engine's fast path (``harness.engine.fast``, docs/PLUGINS.md). ``out`` is the network's
        output at s_0 .. s_{n-1} (.. s_n with ``loss_needs_next_output``), as numpy arrays in the layout
        the network returns; ``target(states)`` gives θ⁻'s output for numpy states (None without a
        target network). Returns ``(loss value, dL/d out)`` with ``dL/d out`` in ``out``'s layout,
        float32. Algorithms that do not override it are trained through autograd of ``loss``."""
        raise NotImplementedError


def forward(algo: Algorithm, net: nn.Module, x: torch.Tensor, state: Any = None) -> tuple[Any, Any]:
    """The network's output for a batch of states ``x`` and the state after it: ``net(x), None`` for
    feed-forward algorithms; ``net(x, state)`` for recurrent ones, from ``algo.initial_state`` when
    ``state`` is None (the start of an episode)."""
    if not algo.recurrent:
        return net(x), None
    return net(x, algo.initial_state(net, x.shape[0]) if state is None else state)


def epsilon_greedy(q: torch.Tensor | np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """q: [1, n_actions] (a tensor or a numpy array). With probability ε a uniformly random action,
    else argmax_a Q(s, a).

    One uniform draw u decides both: explore when u < ε, and then take action ⌊n u/ε⌋, since u/ε is
    uniform on [0, 1) given u < ε (a second draw, ``rng.integers``, costs a µs a step)."""
    u = rng.random()
    if u < epsilon:
        n = q.shape[-1]
        return min(int(u / epsilon * n), n - 1)  # the min: u/ε rounded up to 1.0
    if type(q) is not np.ndarray:
        q = (q.detach() if q.requires_grad else q).numpy()  # numpy's argmax: a µs less than torch's
    return int(q.argmax())


def linear_epsilon(frames: int, final: float, anneal_frames: int) -> float:
    """ε annealed linearly from 1 to ``final`` over the first ``anneal_frames`` global frames."""
    if anneal_frames <= 0:
        return final
    frac = min(1.0, frames / anneal_frames)
    return final + (1.0 - frac) * (1.0 - final)


EPSILON_RESAMPLE = ("episode", "worker")


@dataclass
class EpsilonHyperparameters(Hyperparameters):
    """Exploration of the value-based methods (paper §4 and supplementary §8).

    Each worker's final ε is drawn from ``final_epsilons`` with ``final_epsilon_probs`` and ε is
    annealed from 1 to it over ``epsilon_anneal_frames`` global frames. The paper says ε is
    "periodically sampled" by each thread without giving the period: ``epsilon_resample`` is
    ``"episode"`` (default: a new draw at the start of each of the worker's episodes) or ``"worker"``
    (one draw per worker for the whole run, as in Kaixhin/Atari's implementation).
    """

    final_epsilons: tuple[float, ...] = (0.1, 0.01, 0.5)
    final_epsilon_probs: tuple[float, ...] = (0.4, 0.3, 0.3)
    epsilon_anneal_frames: int = 4_000_000
    epsilon_resample: str = "episode"
    eval_epsilon: float = 0.05
    target_update_frames: int = 40_000  # I_target: the engine sets θ⁻ ← θ when T crosses a multiple

    def __post_init__(self):
        if self.epsilon_resample not in EPSILON_RESAMPLE:
            raise ValueError(f"epsilon_resample must be one of {', '.join(EPSILON_RESAMPLE)}, got {self.epsilon_resample!r}")
        eps, probs = tuple(self.final_epsilons), tuple(self.final_epsilon_probs)
        if not eps or len(eps) != len(probs):
            raise ValueError(f"final_epsilons {eps} and final_epsilon_probs {probs} need the same, non-zero length")
        if any(not 0 <= e <= 1 for e in eps) or any(p < 0 for p in probs) or not sum(probs) > 0:
            raise ValueError(f"final_epsilons must lie in [0, 1] and final_epsilon_probs be >= 0 with a positive sum, got {eps} / {probs}")


#: Defaults of the value-based methods for vector observations (CartPole-sized tasks, budgets of
#: ~1e5-1e6 frames): ε annealed over 100k frames instead of 4M, θ⁻ refreshed every 500 frames
#: instead of 40,000, and final ε drawn from {0.1, 0.01, 0.05} (the paper's 0.5 draws wreck the
#: *training* return of short balancing tasks, which is what such runs report).
#:
#: Why θ⁻ every 500 frames (CleanRL's DQN on CartPole also refreshes its target every 500 steps):
#: a one-step target r + γQ(s'; θ⁻) carries value at most one step further per refresh, so after k
#: refreshes Q is bounded by the k-step return (1 − γᵏ)/(1 − γ), and CartPole's values are ~100 at
#: γ = 0.99. With a refresh every 2,000 frames (~400 shared updates on one stale target with 2
#: workers) one-step SARSA ended 500k-frame runs with Q(upright) at 48-63 instead of ~100; where
#: both actions have the same truncated value the greedy action is noise, and the policy kept
#: falling into stretches of ~10-step episodes (one action everywhere), also late in the run, and
#: one-step SARSA and Q ended at last-50 training means of 204 and 199 (SARSA after mid-run means of
#: 10). A lower learning rate (3e-4) or RMSProp ε (1e-5) only moved the collapses (one-step Q at
#: lr 3e-4 ended at 22), and θ⁻ every 10,000 frames made it worse (SARSA: 12). Every 500 frames,
#: SARSA ends with Q(upright) at 93-98, and one-step Q and SARSA (seeds 1-3) and n-step Q end at
#: 427-500.
VECTOR_EPSILON_DEFAULTS = {
    "epsilon_anneal_frames": 100_000,
    "target_update_frames": 500,
    "final_epsilons": (0.1, 0.01, 0.05),
}


class EpsilonGreedyMixin:
    """Final ε sampled from {0.1, 0.01, 0.5} w.p. {0.4, 0.3, 0.3}, annealed from 1; drawn anew at
    each episode start (``epsilon_resample="episode"``) or once per worker (``"worker"``)."""

    hp: EpsilonHyperparameters
    final_epsilon: float = 0.1
    act_takes_numpy = True  # epsilon_greedy reads a tensor or an array

    def draw_final_epsilon(self, rng: np.random.Generator) -> float:
        """``rng.choice(final_epsilons, p=probs / probs.sum())``, the same single uniform draw and the same
        result, by inverse CDF over a table built once (``choice`` re-validates p at ~100 µs a call,
        and it is called at every episode start)."""
        table = self.__dict__.get("_epsilon_cdf")
        if table is None:
            probs = np.asarray(self.hp.final_epsilon_probs, dtype=float)
            cdf = (probs / probs.sum()).cumsum()
            cdf /= cdf[-1]  # as numpy's choice does
            table = self._epsilon_cdf = (cdf, [float(e) for e in self.hp.final_epsilons])
        cdf, eps = table
        return eps[int(cdf.searchsorted(rng.random(), side="right"))]

    def init_worker(self, worker_index: int, rng: np.random.Generator) -> None:
        self.final_epsilon = self.draw_final_epsilon(rng)

    def start_episode(self, rng: np.random.Generator) -> None:
        if self.hp.epsilon_resample == "episode":
            self.final_epsilon = self.draw_final_epsilon(rng)

    def epsilon(self, frames: int) -> float:
        return linear_epsilon(frames, self.final_epsilon, self.hp.epsilon_anneal_frames)

    def act(self, out: torch.Tensor, frames: int, rng: np.random.Generator) -> int:
        return epsilon_greedy(out, self.epsilon(frames), rng)

    def act_eval(self, out: torch.Tensor, rng: np.random.Generator) -> int:
        return epsilon_greedy(out, self.hp.eval_epsilon, rng)


_REGISTRY: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: make an algorithm available by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} needs a non-empty class attribute `name`")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Algorithm]]:
    return _REGISTRY


def n_step_returns(rewards: torch.Tensor, bootstrap: float, gamma: float) -> torch.Tensor:
    """Forward-view returns of a segment: R ← bootstrap; for i = n-1 … 0: R ← r_i + γR.

    The last state gets a 1-step return, the one before a 2-step return, … up to n steps.
    ``bootstrap`` is 0 when the segment ended in a terminal state.
    """
    # Python floats: indexing a tensor element by element costs microseconds a step
    return torch.tensor(discounted_returns(rewards.tolist(), bootstrap, gamma), dtype=rewards.dtype)


def discounted_returns(rewards: list[float], bootstrap: float, gamma: float) -> list[float]:
    """:func:`n_step_returns` over Python floats."""
    out = [0.0] * len(rewards)
    R = float(bootstrap)
    for i in range(len(rewards) - 1, -1, -1):
        R = rewards[i] + gamma * R
        out[i] = R
    return out


@njit(cache=True)
def squared_error_gradient(q: np.ndarray, actions: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Σ_i (y_i − Q(s_i, a_i))² for Q [n, A] and its gradient with respect to Q: −2 (y_i − Q(s_i, a_i))
    at (i, a_i), 0 for the actions not taken (the value-based methods' ``loss_gradient``). Compiled
    (numba): as numpy's fancy indexing it took seven calls, a µs each, for a handful of numbers."""
    d_q = np.zeros_like(q)
    loss = 0.0
    for i in range(len(actions)):
        err = y[i] - q[i, actions[i]]
        d_q[i, actions[i]] = -2.0 * err
        loss += err * err
    return loss, d_q
