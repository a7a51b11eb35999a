"""The synchronous schedule: N environments step in lockstep against one θ, and their N segments'
gradients, all taken at that θ, are combined into one update (README "Schedules").

With A3C this is A2C / PAAC (Clemente et al. 2017); the value-based methods get their synchronous
twins. Each environment keeps what a worker keeps (an :class:`~harness.engine.worker.Actor`: its
environment, random stream, exploration and, for per-worker optimizers, the first row of the
statistics is the learner's); acting is one batched forward pass over the observations of the
environments whose segments are still open (``worker.collect_lockstep``); the update applies the mean
of the N segments' gradients (PAAC and A2C average over environments), clipped to a global norm as
one gradient, with the learning rate of T after the N segments' frames are counted. It runs for real
in one process: its frames/s are real, its policy lag is 0 by construction.
"""

from __future__ import annotations

import time

from harness.engine.worker import (Actor, Diverged, PhaseTimes, SharedState, build_learner, collect_lockstep,
                                   compute_gradient, crosses_multiple, peak_rss_mb, send)


def sync_main(rank: int, config: dict, shared: SharedState) -> None:
    """The process of the synchronous learner (the supervisor starts one, as ``rank`` 0)."""
    from harness.engine.worker import worker_main

    worker_main(rank, config, shared, body=_run_sync)


def _run_sync(rank: int, config: dict, shared: SharedState) -> None:
    from harness.config import RunConfig
    from harness.engine.lag import LagCounter
    from harness.engine.shared import linear_lr

    cfg = RunConfig.from_dict(config)
    params = shared.params
    actors = [Actor(w, cfg, shared.opt_stats, shared.optimizer) for w in range(cfg.threads)]
    # one learner: it acts on θ itself
    net, _, grad, target_net = build_learner(actors[0], shared.target, params)
    for actor in actors:
        actor.start(cfg.env_settings.clip_rewards)
    collectors, rngs = [a.collector for a in actors], [a.rng for a in actors]
    opt = actors[0].opt  # the learner's optimizer statistics (row 0 for per-worker optimizers)

    frames_per_step = cfg.env_spec.frames_per_step
    budget, lr0, clip_norm = cfg.frames, cfg.lr, cfg.engine.grad_clip
    target_every = int(cfg.hyperparameters.get("target_update_frames", 40_000))
    counter, stop, channel = shared.counter, shared.stop, shared.channel
    lags, phases = LagCounter(), PhaseTimes()
    clock = time.perf_counter
    T = counter.value
    started = None
    while not stop.is_set() and T < budget:
        t1 = clock()
        segments = collect_lockstep(collectors, net, T, rngs)
        t2 = clock()
        try:
            compute_gradient(actors[0].algo, net, target_net, segments[0][0], grad, clip_norm, "synchronous learner",
                             more=[(a.algo, seg) for a, (seg, _) in zip(actors[1:], segments[1:])])
        except Diverged as exc:
            send(shared, ("diverged", 0, f"{exc} at frame {T}"))
            stop.set()
            return
        t3 = clock()
        n = sum(len(seg) for seg, _ in segments) * frames_per_step
        with counter.get_lock():
            counter.value += n
            T = counter.value
            now = round(time.time() - shared.t0, 3)
            for w, (_, finished) in enumerate(segments):
                for ret, length in finished:
                    channel.send(("episode", {"frames": T, "wall_seconds": now, "worker": w, "return": ret,
                                              "length": length}))
        t4 = clock()
        opt.step(params, grad, linear_lr(lr0, T, budget))
        lags.add(0)  # every gradient of the update was taken at the θ it is applied to
        if started is None:
            started = round(time.time() - shared.t0, 3)
            send(shared, ("started", 0, started))
        if target_net is not None and crosses_multiple(T - n, T, target_every):
            shared.target.copy_(params)
        phases.add((0.0, t2 - t1, t3 - t2, clock() - t4, t4 - t3), n // frames_per_step)
    send(shared, ("phases", 0, phases.to_dict()))
    send(shared, ("lag", 0, lags.histogram()))
    send(shared, ("memory", 0, peak_rss_mb()))
    for a in actors:
        a.env.close()
