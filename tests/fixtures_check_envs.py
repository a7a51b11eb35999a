"""Gymnasium environments for ``harness check env`` tests, registered on import
(``env_modules: [tests.fixtures_check_envs]`` / ``--env-module tests.fixtures_check_envs``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    """Walk right along a corridor of 8 cells; the start cell is random (seeded properly)."""

    def __init__(self, length: int = 8):
        self.length = length
        self.observation_space = spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.pos = 0

    def _obs(self):
        obs = np.zeros(self.length, np.float32)
        obs[self.pos] = 1.0
        return obs

    def _start(self) -> int:
        return int(self.np_random.integers(0, self.length // 2))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self._start()
        return self._obs(), {}

    def step(self, action):
        self.pos = max(0, min(self.length - 1, self.pos + (1 if action == 1 else -1)))
        done = self.pos == self.length - 1
        return self._obs(), (1.0 if done else -0.01), done, False, {}


class UnseededCorridor(Corridor):
    """Ignores the seed: draws the start cell from numpy's global generator."""

    def _start(self) -> int:
        return int(np.random.randint(0, self.length // 2))


class LeakyCorridor(Corridor):
    """Its observations leave the declared space (2.0 in a [0, 1] Box) from the first step."""

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        return obs * 2.0, r, term, trunc, info


class SeedIgnoringCorridor(Corridor):
    """Ignores the seed: reset never calls super().reset(seed=seed) and always starts in cell 0.
    Deterministic, so the harness's own checks pass; gymnasium's checker rejects it (as it rejects
    MinAtar, whose reset seeds a generator of its own)."""

    def reset(self, *, seed=None, options=None):
        self.pos = 0
        return self._obs(), {}


class LeakyResetCorridor(Corridor):
    """Its first observation leaves the declared space (2.0 in a [0, 1] Box)."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return obs * 2.0, info


def make_lambda_wrapped(**kwargs):
    """A Corridor wrapped with a lambda, the way CartPoleNoVelocity-v1 used to be built: gymnasium cannot
    re-create it from its spec (a new lambda is never equal to the recorded one)."""
    env = gym.make("HarnessCheck/Corridor-v0", **kwargs)
    return gym.wrappers.TransformObservation(env, lambda o: o.copy(), env.observation_space)


class ContinuousCorridor(Corridor):
    def __init__(self):
        super().__init__()
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)


class GridCorridor(Corridor):
    """A rank-2 observation (H, W) without a channel axis."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Box(0.0, 1.0, (2, self.length), np.float32)

    def _obs(self):
        return np.stack([super()._obs(), super()._obs()])


class SmallGrid(Corridor):
    """A MinAtar-like observation: a 10x10 grid of booleans with 3 channels, channel-last; the agent's
    cell is on in channel 0, the goal's in channel 1."""

    def __init__(self):
        super().__init__(length=10)
        self.observation_space = spaces.Box(0, 1, (10, 10, 3), bool)
        self.action_space = spaces.Discrete(3)

    def _obs(self):
        obs = np.zeros((10, 10, 3), bool)
        obs[5, self.pos, 0] = True
        obs[5, self.length - 1, 1] = True
        return obs

    def step(self, action):
        return super().step(1 if action == 2 else 0 if action == 0 else 2)


class TinyImage(Corridor):
    """A [1, 2, 2] image: too small for any built-in network."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Box(0.0, 1.0, (1, 2, 2), np.float32)

    def _obs(self):
        return np.full((1, 2, 2), self.pos / self.length, np.float32)


def register_small_grids() -> None:
    """Registers the grid environments when called (``env_modules: [tests.fixtures_check_envs:register_small_grids]``),
    the way MinAtar's ``minatar.gym.register_envs`` does."""
    for _id, _cls in {"HarnessCheck/SmallGrid-v0": SmallGrid, "HarnessCheck/TinyImage-v0": TinyImage}.items():
        if _id not in gym.registry:
            gym.register(_id, entry_point=_cls, max_episode_steps=100)


for _id, _cls in {
    "HarnessCheck/Corridor-v0": Corridor,
    "HarnessCheck/Unseeded-v0": UnseededCorridor,
    "HarnessCheck/Leaky-v0": LeakyCorridor,
    "HarnessCheck/SeedIgnoring-v0": SeedIgnoringCorridor,
    "HarnessCheck/LeakyReset-v0": LeakyResetCorridor,
    "HarnessCheck/LambdaWrapped-v0": make_lambda_wrapped,
    "HarnessCheck/Continuous-v0": ContinuousCorridor,
    "HarnessCheck/Grid-v0": GridCorridor,
}.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point=_cls, max_episode_steps=100)
