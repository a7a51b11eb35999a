"""One actor-learner process: the paper's "thread".

``worker_main`` is a top-level function, safe to fork or spawn (``engine.run.start_method``). It acts in its own environment with a local
copy θ' of the shared parameters, asks the algorithm for the segment's loss, and applies the
gradient to the shared θ without locks. It reports finished episodes, divergence and errors to the
supervisor through a pipe, and ends when the stop event is set or the frame budget is spent.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from algorithms.base import Segment, SegmentArrays
from harness.engine.fast import FastNetwork, fast_gradient, fast_learner
from harness.engine.shared import clip_grad_norm_


@dataclass
class SharedState:
    """What the supervisor shares with every worker (all in shared memory)."""

    params: torch.Tensor  # flat θ
    target: torch.Tensor | None  # flat θ⁻ (value-based methods)
    opt_stats: torch.Tensor  # optimizer statistics, see engine.shared.OptimizerState
    optimizer: str
    counter: Any  # multiprocessing.Value('q'): global frame counter T
    stop: Any  # multiprocessing.Event
    channel: Any  # multiprocessing Connection: the write end of the pipe to the supervisor (see send)
    t0: float  # time.time() at which the run's wall clock reads 0 (earlier on resume)
    updates: Any  # multiprocessing.Value('q'): updates applied to θ so far in this session (policy lag, engine.lag)
    clock: Any  # multiprocessing.Value('d'): the virtual schedule's clock in seconds (engine.virtual); unused otherwise
    #: False only in the benchmark control (``train(..., hogwild=False)``): each worker then updates
    #: a private copy of θ and of the optimizer statistics, and no shared model is trained
    hogwild: bool = True


#: agent steps each worker takes before its loop is timed (start-up, caches, allocator)
WARMUP_STEPS = 1000


class PhaseTimes:
    """Where one worker's time goes, summed over its timed segments (see ``to_dict``)."""

    NAMES = ("sync", "act", "learn", "update", "report")

    def __init__(self):
        self.seconds = [0.0] * len(self.NAMES)
        self.segments = 0
        self.steps = 0

    def add(self, times: tuple[float, ...], steps: int) -> None:
        for i, t in enumerate(times):
            self.seconds[i] += t
        self.segments += 1
        self.steps += steps

    def to_dict(self) -> dict:
        """Milliseconds per segment of each phase, and the counts they are averaged over:
        ``sync`` θ' ← θ; ``act`` the environment, forward passes and action choice of the segment;
        ``learn`` loss, backward pass and clipping; ``update`` the shared optimizer step and θ⁻;
        ``report`` T += the segment's frames, and sending finished episodes to the supervisor."""
        k = max(self.segments, 1)
        out = {f"{name}_ms": round(s / k * 1e3, 4) for name, s in zip(self.NAMES, self.seconds)}
        out.update(segments=self.segments, steps=self.steps)
        return out


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (``getrusage``; the current figure where that is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        import psutil
        return round(psutil.Process().memory_info().peak_wset / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def worker_seeds(run_seed: int, worker: int) -> tuple[int, int]:
    """(environment seed, torch/numpy seed) of a worker, derived from the run seed."""
    a, b = np.random.SeedSequence([run_seed, worker]).generate_state(2)
    return int(a), int(b)


def crosses_multiple(before: int, after: int, period: int) -> bool:
    """Whether the frame counter passed a multiple of ``period`` going from ``before`` to ``after``
    (``before < k·period <= after``): when θ⁻ ← θ (the paper's T mod I_target == 0, for counters
    that move by a whole segment at a time)."""
    return after // period > before // period


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process if the supervisor dies (no orphans)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover - not Linux
        pass


def worker_main(rank: int, config: dict, shared: SharedState, body=None) -> None:
    """Entry point of worker ``rank`` (forked or spawned by the supervisor); ``body`` is the schedule's
    loop (default: one asynchronous actor-learner, ``_run``)."""
    run = body or _run
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker would inherit the supervisor's handler
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    one_blas_thread()
    try:
        profile_dir = os.environ.get("HARNESS_PROFILE_DIR")
        if profile_dir:  # cProfile each worker into PROFILE_DIR/worker-<rank>.prof (docs/BENCHMARKS.md)
            import cProfile

            cProfile.runctx("run(rank, config, shared)", globals(), locals(), f"{profile_dir}/worker-{rank}.prof")
        else:
            run(rank, config, shared)
    except BaseException:  # noqa: BLE001 - report everything, then exit non-zero
        try:
            send(shared, ("error", rank, traceback.format_exc(limit=8)))
        finally:
            shared.stop.set()
        raise SystemExit(1)


def one_blas_thread() -> bool:
    """One thread for numpy's BLAS and SciPy's (numba's ``np.dot`` in ``engine.kernels`` calls it) in this
    process (the fast path's matrix products): a worker is one core's work, and OpenBLAS would start
    as many threads as the machine has cores. The ``harness`` command sets ``OPENBLAS_NUM_THREADS=1``
    before numpy loads; a process that loaded numpy earlier (a notebook, a forked worker of one) is
    set here through OpenBLAS's own call, as threadpoolctl does. Returns whether a BLAS was found and
    set."""
    import glob

    found = False
    site = os.path.join(os.path.dirname(np.__file__), os.pardir)
    paths = [p for libs in ("numpy.libs", "scipy.libs") for p in glob.glob(os.path.join(site, libs, "*openblas*"))]
    for path in paths:
        try:
            lib = ctypes.CDLL(path)  # the library numpy (or later numba, for SciPy's) loads: one copy
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(1)
                found = True
                break
    return found


def send(shared: SharedState, message: tuple) -> None:
    """Send a message to the supervisor. All workers write one pipe, under the lock of the frame
    counter T, so messages arrive in the order of T (episodes.csv is ordered by frames) and a message
    is in the pipe, not in a feeder thread, once this returns."""
    with shared.counter.get_lock():
        shared.channel.send(message)


class Diverged(Exception):
    """A segment's loss or gradient norm is not finite: the run has diverged (the message says where)."""


class Actor:
    """One actor-learner's own things, as the paper gives each thread: its environment (seeded from
    the run seed and its index), its random stream, its algorithm instance (its exploration, e.g. a
    final ε), its segment collector and its row of the optimizer statistics. A worker process holds
    one; the virtual schedule holds N in one process (``engine.virtual``), built in the same order so
    that actor ``rank`` draws the same random numbers either way."""

    def __init__(self, rank: int, cfg, opt_stats: torch.Tensor, optimizer: str):
        from harness.engine.shared import FlatOptimizer, OptimizerState
        from harness.envs import make_env
        from harness.plugins import load_algorithm

        self.rank = rank
        env_seed, self.seed = worker_seeds(cfg.run_seed, rank)
        self.rng = np.random.default_rng(self.seed)
        algo_cls = load_algorithm(cfg.algorithm)
        self.algo = algo_cls(algo_cls.Hyperparameters(**cfg.hyperparameters))
        self.env = make_env(cfg.env_spec, cfg.env_settings)
        self.opt = FlatOptimizer(OptimizerState(optimizer, opt_stats), rank,
                                 cfg.engine.rmsprop_alpha, cfg.engine.rmsprop_eps, cfg.engine.momentum)
        self.t_max = int(cfg.hyperparameters.get("t_max", 5))
        self.env_seed = env_seed
        self.fast = cfg.engine.gradient == "fast"  # the engine's gradient path (build_learner)
        self.collector: SegmentCollector | None = None

    def start(self, clip_rewards: bool) -> None:
        """After the network exists (its construction may draw from torch's generator, never from ours)."""
        self.algo.init_worker(self.rank, self.rng)
        self.collector = SegmentCollector(self.env, self.algo, self.t_max, clip_rewards, seed=self.env_seed, rng=self.rng)


def build_learner(actor: Actor, target: torch.Tensor | None, params: torch.Tensor | None = None):
    """The network of an actor-learner process, built after seeding torch from ``actor``'s seed:
    ``(net, θ', flat gradient, target network)``. Its parameters are views into a local copy θ' (synced
    from θ before each segment), or into ``params`` itself when given (one learner acting on θ); the
    target network, for methods that have one, reads the shared θ⁻ (``target``) in place.

    With the engine's ``gradient = "fast"`` (``actor.fast``), a built-in network of an algorithm that gives
    its ``loss_gradient`` is returned as its numpy twin, and so is its target network
    (``engine.fast.FastNetwork``: called like the module, on the same buffers); :func:`compute_gradient`
    then takes the fast path."""
    from harness.engine.shared import attach_flat_grad, flatten_into

    torch.manual_seed(actor.seed)
    algo, env = actor.algo, actor.env
    net = algo.build_network(env.observation_space, env.n_actions)
    local = flatten_into(net) if params is None else flatten_into(net, params)
    grad = attach_flat_grad(net)
    target_net = None
    if algo.uses_target_network:
        target_net = algo.build_network(env.observation_space, env.n_actions)
        flatten_into(target_net, target)
        target_net.requires_grad_(False)
    fnet, ftarget = fast_learner(algo, net, target_net, actor.fast)
    if fnet is not None:
        return fnet, local, grad, ftarget
    return net, local, grad, target_net


def compute_gradient(algo, net, target_net, seg: Segment, grad: torch.Tensor, clip_norm: float,
                     where: str, more: list | None = None) -> None:
    """The segment's loss, backpropagated into the flat gradient ``grad`` and clipped to a global
    norm of ``clip_norm``; raises :class:`Diverged` (naming ``where``) when the loss or the norm is not finite.

    ``more``: further ``(algo, segment)`` pairs, all taken at the same θ (the synchronous schedule): the
    gradient is then the mean of the segments' gradients, clipped as one. Feed-forward algorithms get
    their network's output for every segment from one batched forward pass (:class:`ServedForward`).

    When ``net`` is a fast network (:func:`build_learner`), the gradient is computed by the fast path
    (``engine.fast.fast_gradient``): the same loss, its gradient written by hand."""
    loss = None
    if isinstance(net, FastNetwork):  # writes the gradient as it computes the loss's value
        loss_value = fast_gradient([(algo, seg), *(more or [])], net, target_net)
    else:
        if more:
            pairs = [(algo, seg), *more]
            served = net if algo.recurrent else ServedForward(net, [s for _, s in pairs])
            loss = sum(a.loss(served, target_net, s)[0] for a, s in pairs) / len(pairs)
        else:
            loss, _ = algo.loss(net, target_net, seg)
        loss_value = float(loss.detach())
    if not math.isfinite(loss_value):
        raise Diverged(f"{where}: non-finite loss {loss_value}")
    if loss is not None:
        grad.zero_()
        loss.backward()
    if not math.isfinite(clip_grad_norm_(grad, clip_norm)):
        raise Diverged(f"{where}: non-finite gradient norm")


def _run(rank: int, config: dict, shared: SharedState) -> None:
    from harness.config import RunConfig
    from harness.engine.lag import LagCounter, SharedUpdates
    from harness.engine.shared import linear_lr

    cfg = RunConfig.from_dict(config)
    params, opt_stats = shared.params, shared.opt_stats
    if not shared.hogwild:  # benchmark control: the same work on unshared memory
        params, opt_stats = params.clone(), opt_stats.clone()
    actor = Actor(rank, cfg, opt_stats, shared.optimizer)
    algo, env, rng, opt = actor.algo, actor.env, actor.rng, actor.opt
    net, local, grad, target_net = build_learner(actor, shared.target)  # θ', dθ, θ⁻
    actor.start(cfg.env_settings.clip_rewards)

    t_max = actor.t_max
    frames_per_step = cfg.env_spec.frames_per_step
    budget, lr0, clip_norm = cfg.frames, cfg.lr, cfg.engine.grad_clip
    target_every = int(cfg.hyperparameters.get("target_update_frames", 40_000))
    counter, stop, channel = shared.counter, shared.stop, shared.channel
    updates, lags = SharedUpdates(shared.updates), LagCounter()

    collector = actor.collector
    T = counter.value
    clock = time.perf_counter
    phases = PhaseTimes()
    warmup_segments = max(1, WARMUP_STEPS // t_max)  # time the loop only once start-up is over
    started = None

    while not stop.is_set() and T < budget:
        t0 = clock()
        u0 = updates.before_sync()  # before θ' ← θ: an update landing during the copy counts as lag
        local.copy_(params)  # θ' ← θ
        t1 = clock()
        seg, finished = collector.collect(net, T, rng)
        t2 = clock()
        try:
            compute_gradient(algo, net, target_net, seg, grad, clip_norm, f"worker {rank}")
        except Diverged as exc:
            send(shared, ("diverged", rank, f"{exc} at frame {T}"))
            stop.set()
            return
        t3 = clock()

        n = len(seg) * frames_per_step
        with counter.get_lock():
            counter.value += n
            T = counter.value
            if finished:  # sent under the lock: episodes reach the supervisor in the order of T
                now = round(time.time() - shared.t0, 3)
                for ret, length in finished:
                    channel.send(("episode", {"frames": T, "wall_seconds": now, "worker": rank, "return": ret, "length": length}))
        t4 = clock()
        opt.step(params, grad, linear_lr(lr0, T, budget))
        lags.add(updates.applied(u0))  # policy lag: the other workers' updates applied since u0
        if started is None:  # the end of start-up: this worker's first update
            started = round(time.time() - shared.t0, 3)
            send(shared, ("started", rank, started))
        if target_net is not None and crosses_multiple(T - n, T, target_every):
            shared.target.copy_(params)  # θ⁻ ← θ every target_update_frames frames
        t5 = clock()
        if warmup_segments:
            warmup_segments -= 1
        else:
            phases.add((t1 - t0, t2 - t1, t3 - t2, t5 - t4, t4 - t3), len(seg))
    send(shared, ("phases", rank, phases.to_dict()))
    send(shared, ("lag", rank, lags.histogram()))
    send(shared, ("memory", rank, peak_rss_mb()))  # the supervisor's samples miss workers of sub-second runs
    env.close()


class SegmentCollector:
    """Steps one environment for up to t_max steps, or to the end of an episode, per call.

    It keeps the current observation and the running episode's raw return between calls, clips
    rewards for learning, calls ``algo.start_episode(rng)`` at the start of every episode (with
    ``rng`` given: the first, at construction, and each one after a game ended), and for algorithms
    with ``needs_next_action`` (SARSA) chooses the action in s_n before the update and takes it
    first in the next segment. For recurrent algorithms it carries the network state from step to
    step, starts each episode from ``algo.initial_state(net)`` and stores in each segment the state
    its first step was taken from (``Segment.state``).
    """

    def __init__(self, env, algo, t_max: int, clip_rewards: bool, seed: int | None = None, rng=None):
        self.env, self.algo, self.t_max, self.clip = env, algo, t_max, clip_rewards
        self.obs = env.reset(seed=seed)
        if rng is not None:
            algo.start_episode(rng)
        # s_0 .. s_n of the segment, written through numpy; each step's network input is a row view of buf
        self.buf = torch.empty((t_max + 1, *self.obs.shape), dtype=torch.from_numpy(self.obs).dtype)
        self._buf = self.buf.numpy()
        self._rows = [self.buf[i : i + 1] for i in range(t_max + 1)]
        self._numpy_rows = [self._buf[i : i + 1] for i in range(t_max + 1)]  # for networks that take numpy (engine.fast)
        self._prefixes = [self.buf[:i] for i in range(t_max + 1)]  # s_0 .. s_{n-1}: a torch slice costs a µs
        self.ep_return, self.ep_len = 0.0, 0
        self.carried_action: int | None = None
        if algo.recurrent and algo.needs_next_action:
            raise ValueError(f"{algo.name}: a recurrent algorithm cannot set needs_next_action (not supported)")
        self.state = None  # recurrent algorithms: the network state; None until the episode's first step

    def collect(self, net, frames: int, rng) -> tuple[Segment, list[tuple[float, int]]]:
        """One segment and the (raw return, length) of every episode that ended in it."""
        if _is_fast(net):  # numpy rows, acting's activations kept (engine.fast); no autograd to turn off
            return self._collect(net, frames, rng, self._numpy_rows, net.act_row)
        with torch.no_grad():  # acting builds no graph (entered once a segment: it costs microseconds)
            return self._collect(net, frames, rng, self._rows, None)

    def _collect(self, net, frames: int, rng, rows, act_row) -> tuple[Segment, list[tuple[float, int]]]:
        algo = self.algo
        recurrent = algo.recurrent
        obs = self._begin(net)
        for n in range(self.t_max):
            self._buf[n] = obs
            if self.carried_action is None:
                if recurrent:
                    out, self.state = net(rows[n], self.state)
                elif act_row is not None:
                    out = act_row(rows[n], n)
                else:
                    out = net(rows[n])  # s_n as a batch of one
                a = algo.act(out, frames, rng)
            else:
                a, self.carried_action = self.carried_action, None
            obs = self._step(a)
            if self._closed:
                break
        return self._end(net, frames, rng)

    # -- the pieces of a segment, also driven step by step for several environments at once (collect_lockstep)
    def _begin(self, net):
        """Start a segment; returns the observation its first action is chosen in."""
        self._actions: list[int] = []
        self._rewards: list[float] = []
        self._finished: list[tuple[float, int]] = []
        self._terminal = self._over = self._closed = False
        self._next_state = self.obs
        begin = getattr(net, "begin_segment", None)
        if begin is not None:  # a fast network: θ' may have changed since its last recorded activations
            begin()
        if self.algo.recurrent and self.state is None:
            self.state = self.algo.initial_state(net)  # the episode's first step
        self._state0 = self.state
        return self.obs

    def _step(self, a: int):
        """Take action ``a``; record it; returns the next observation (``_closed`` once the segment ends)."""
        obs, r, term, over, final = self.env.step(a)
        self.ep_return += r
        self.ep_len += 1
        self._actions.append(a)
        self._rewards.append(max(-1.0, min(1.0, r)) if self.clip else r)
        if over:  # the game ended: obs is already the next episode's first observation
            self._finished.append((self.ep_return, self.ep_len))
            self.ep_return, self.ep_len = 0.0, 0
            self.state = None  # the next episode starts from algo.initial_state(net)
            self._next_state, self._terminal, self._over, self._closed = final, term, True, True
        else:
            self._next_state = obs
            if term:  # life lost (terminal_on_life_loss): terminal for the learner, game goes on
                self._terminal = self._closed = True
        if len(self._actions) == self.t_max:
            self._closed = True
        self.obs = obs
        return obs

    def _end(self, net, frames: int, rng) -> tuple[Segment, list[tuple[float, int]]]:
        algo, terminal, over = self.algo, self._terminal, self._over
        n = len(self._actions)
        self._buf[n] = self._next_state  # s_n follows s_0 .. s_{n-1} in the buffer
        actions = np.array(self._actions, dtype=np.int64)
        rewards = np.array(self._rewards, dtype=np.float32)
        seg = Segment(
            obs=self._prefixes[n],
            actions=torch.from_numpy(actions),  # a µs or two less than torch.tensor
            rewards=torch.from_numpy(rewards),
            next_obs=self._rows[n],
            terminal=terminal,
            state=self._state0,
        )
        seg.arrays = SegmentArrays(self._buf[:n], actions, rewards, self._buf[: n + 1])  # views, no copies
        if algo.needs_next_action and not terminal:
            if _is_fast(net):  # s_n's activations under this θ' are kept
                seg.next_action = algo.act(net.act_row(self._numpy_rows[n], n), frames, rng)
            else:
                seg.next_action = algo.act(net(self._rows[n]), frames, rng)
            if not over:
                self.carried_action = seg.next_action  # the action actually taken next
        if over and rng is not None:
            algo.start_episode(rng)  # after s_n's action was chosen under the ended episode's exploration
        return seg, self._finished


def _is_fast(net) -> bool:
    """A fast network (``engine.fast``), asked of its class: a module's ``__getattr__`` raises, at µs a call."""
    return getattr(type(net), "act_row", None) is not None


def output_rows(out, start: int, stop: int):
    """Rows ``start:stop`` of a batched network output: a tensor's ``[start:stop]``, and so for each
    member of a tuple or list (A3C's ``(logits, values)``)."""
    if isinstance(out, torch.Tensor):
        return out[start:stop]
    return type(out)(output_rows(x, start, stop) for x in out)


def output_row(out, i: int):
    """Row ``i`` of a batched network output, as a batch of one."""
    return output_rows(out, i, i + 1)


class ServedForward:
    """Stands in for a feed-forward ``net`` in the losses of several segments taken at one θ (the
    synchronous update): one forward pass over every segment's states s_0..s_n is computed first, and
    a call with one segment's s_0..s_{n-1}, or s_0..s_n, is answered with its rows of that output (the
    same values, and gradients flow through the one pass); any other call goes to the network itself.
    One batched pass and one backward through it replace N small ones, which cost several µs a kernel
    whatever their size."""

    def __init__(self, net, segments: list[Segment]):
        inputs = [torch.cat([seg.obs, seg.next_obs]) for seg in segments]
        self._net, self._out = net, net(torch.cat(inputs))
        self._spans, start = [], 0
        for seg, x in zip(segments, inputs):
            self._spans.append((start, seg.obs, x))
            start += len(x)

    def __call__(self, x):
        for start, obs, full in self._spans:
            for known in (full, obs):
                if x.shape == known.shape and torch.equal(x, known):
                    return output_rows(self._out, start, start + len(known))
        return self._net(x)

    def __getattr__(self, name):
        return getattr(self._net, name)


def collect_lockstep(collectors: list[SegmentCollector], net, frames: int, rngs) -> list[tuple[Segment, list]]:
    """One segment from each environment, stepped in lockstep: at each step one forward pass over
    the observations of every environment whose segment is still open and needs an action, then each
    environment's own action choice (its algorithm instance and random stream) and step. Recurrent
    algorithms act one environment at a time (each carries its own network state)."""
    if collectors[0].algo.recurrent:
        return [c.collect(net, frames, rng) for c, rng in zip(collectors, rngs)]
    with torch.no_grad():
        open_ = [i for i, c in enumerate(collectors) if c._begin(net) is not None]
        for n in range(collectors[0].t_max):
            need = [i for i in open_ if collectors[i].carried_action is None]
            out = net(torch.stack([torch.from_numpy(collectors[i].obs) for i in need])) if need else None
            k = 0
            for i in open_:
                c = collectors[i]
                c._buf[n] = c.obs
                if c.carried_action is None:
                    a = c.algo.act(output_row(out, k), frames, rngs[i])
                    k += 1
                else:
                    a, c.carried_action = c.carried_action, None
                c._step(a)
            open_ = [i for i in open_ if not collectors[i]._closed]
            if not open_:
                break
        return [c._end(net, frames, rng) for c, rng in zip(collectors, rngs)]
