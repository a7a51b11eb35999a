"""The virtual schedule: N actor-learners in one process, updating θ in the order N workers on N
cores would, under a discrete-event schedule fixed before the run (README "Schedules").

Each virtual worker is an :class:`~harness.engine.worker.Actor` (its own environment, random
stream, exploration and optimizer-statistics row, built as a worker process builds its own). At its
*sync* event (virtual time t) it copies θ' ← θ as θ stands then, acts its segment, computes the
segment's gradient on θ' and holds it; the time model (``harness.timemodel``) says how long that
segment would take on a core of its own, and at that virtual time its *update* event applies the
held gradient to the shared θ and optimizer statistics, with the learning rate of T then. Between
the two, the other workers' updates land as their own events fall. Events are processed in virtual
time (ties in the order they were scheduled), so the run does not depend on how busy the machine
is: the same command twice gives the same episodes.csv byte for byte.

It talks to the supervisor exactly as worker processes do (the frame counter T, episodes, phases,
policy lag, divergence, the stop event), so budgets, evaluations, checkpoints, resume and the
supervisor's guarantees are those of a real run. Episodes carry the virtual clock as their
``wall_seconds``, which the process also publishes in ``shared.clock`` for evaluation snapshots.
"""

from __future__ import annotations

import heapq
import math
import time

import numpy as np
import torch

from harness.engine.worker import (Actor, Diverged, PhaseTimes, SharedState, build_learner, compute_gradient,
                                   crosses_multiple, peak_rss_mb, send)


class Schedule:
    """The event order of the time model: segment durations and start offsets in virtual seconds."""

    def __init__(self, model: dict, workers: int):
        self.step_s = float(model["step_ms"]) / 1e3
        self.update_s = float(model["update_ms"]) / 1e3
        self.jitter = float(model.get("jitter", 0.0))
        self.rng = np.random.default_rng([int(model.get("seed", 0)), 0x7157])  # its own stream, never an actor's
        start = model.get("start_ms", 0.0)
        self.starts = ([float(x) / 1e3 for x in start] if isinstance(start, list) else
                       [float(start) / 1e3 * float(u) for u in self.rng.random(workers)])

    def duration(self, steps: int) -> float:
        """Virtual seconds of a segment of ``steps`` agent steps (one draw per call, in call order)."""
        base = steps * self.step_s + self.update_s
        return base * math.exp(self.jitter * float(self.rng.standard_normal())) if self.jitter else base


def virtual_main(rank: int, config: dict, shared: SharedState) -> None:
    """The process that runs every virtual worker (the supervisor starts one, as ``rank`` 0)."""
    from harness.engine.worker import worker_main

    worker_main(rank, config, shared, body=_run_virtual)


def _run_virtual(rank: int, config: dict, shared: SharedState) -> None:
    from harness.config import RunConfig
    from harness.engine.lag import LagCounter
    from harness.engine.shared import linear_lr

    cfg = RunConfig.from_dict(config)
    n_workers = cfg.threads
    params = shared.params
    actors = [Actor(w, cfg, shared.opt_stats, shared.optimizer) for w in range(n_workers)]
    # one θ' serves every virtual worker: a segment is acted and its gradient taken within its sync event
    net, local, grad, target_net = build_learner(actors[0], shared.target)
    for actor in actors:
        actor.start(cfg.env_settings.clip_rewards)

    frames_per_step = cfg.env_spec.frames_per_step
    budget, lr0, clip_norm = cfg.frames, cfg.lr, cfg.engine.grad_clip
    target_every = int(cfg.hyperparameters.get("target_update_frames", 40_000))
    counter, stop, channel = shared.counter, shared.stop, shared.channel
    schedule = Schedule(cfg.time_model, n_workers)
    virtual_clock = shared.clock.get_obj()  # written without the lock: only this process writes it
    t_start = float(virtual_clock.value)  # virtual seconds already run (a resumed run goes on from there)
    held = [torch.zeros_like(grad) for _ in range(n_workers)]  # each worker's gradient, waiting for its update
    pending: list[tuple[int, list, int]] = [(0, [], 0)] * n_workers  # frames, finished episodes, u0
    lags = [LagCounter() for _ in range(n_workers)]
    phases = [PhaseTimes() for _ in range(n_workers)]
    clock = time.perf_counter
    T, U = counter.value, 0
    events: list[tuple[float, int, int, int]] = []  # (virtual time, order, kind, worker): kind 0 sync, 1 update
    order = 0
    for w in range(n_workers):
        heapq.heappush(events, (t_start + schedule.starts[w], order, 0, w))
        order += 1
    send(shared, ("started", 0, 0.0))  # the virtual clock starts with the workers: no start-up to subtract

    while events and not stop.is_set():
        now, _, kind, w = heapq.heappop(events)
        actor = actors[w]
        if kind == 0:  # sync: θ' ← θ, act the segment, take its gradient on θ'
            t0 = clock()
            u0 = U
            local.copy_(params)
            t1 = clock()
            seg, finished = actor.collector.collect(net, T, actor.rng)
            t2 = clock()
            try:
                compute_gradient(actor.algo, net, target_net, seg, grad, clip_norm, f"worker {w}")
            except Diverged as exc:
                send(shared, ("diverged", w, f"{exc} at frame {T}"))
                stop.set()
                return
            held[w].copy_(grad)
            pending[w] = (len(seg) * frames_per_step, finished, u0)
            phases[w].add((t1 - t0, t2 - t1, clock() - t2, 0.0, 0.0), len(seg))
            heapq.heappush(events, (now + schedule.duration(len(seg)), order, 1, w))
            order += 1
            continue
        # update: the held gradient lands on θ now, with the learning rate of T now
        t3 = clock()
        n, finished, u0 = pending[w]
        lags[w].add(U - u0)
        U += 1
        virtual_clock.value = now
        with counter.get_lock():
            counter.value += n
            T = counter.value
            for ret, length in finished:
                channel.send(("episode", {"frames": T, "wall_seconds": round(now, 3), "worker": w,
                                          "return": ret, "length": length}))
        actor.opt.step(params, held[w], linear_lr(lr0, T, budget))
        if target_net is not None and crosses_multiple(T - n, T, target_every):
            shared.target.copy_(params)
        phases[w].seconds[3] += clock() - t3
        if T >= budget:
            break  # the budget is spent: segments still in flight are dropped (a real run's finish theirs)
        heapq.heappush(events, (now, order, 0, w))  # it syncs again as soon as its update is applied
        order += 1
    for w in range(n_workers):
        send(shared, ("phases", w, phases[w].to_dict()))
        send(shared, ("lag", w, lags[w].histogram()))
        actors[w].env.close()
    send(shared, ("memory", rank, peak_rss_mb()))
