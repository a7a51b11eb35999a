"""Environments whose episode lengths are known, for the schedules' hand-computed tests
(``env_modules: [tests.fixtures_schedule]``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Episodes(gym.Env):
    """Every episode lasts ``length`` steps (reward 0); ``length=None``: 5 steps when the first
    seeded reset's seed is odd, 1 step when it is even, for the rest of the environment's life."""

    def __init__(self, length: int | None = 5):
        self.length, self.fixed = length, length is not None
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if not self.fixed and seed is not None:
            self.length = 5 if seed % 2 else 1
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(1, self.t / 5, np.float32), 0.0, self.t >= self.length, False, {}


for env_id, kwargs in (("FiveSteps-v0", {"length": 5}), ("SeedLength-v0", {"length": None})):
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point="tests.fixtures_schedule:Episodes", kwargs=kwargs)
