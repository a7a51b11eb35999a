"""Environments this harness ships, registered with gymnasium by :func:`harness.envs.register_shipped_envs`.

Each is built from importable classes (no lambdas), so gymnasium can re-create it from its spec
(``env.spec.make()``) and ``gymnasium.utils.env_checker.check_env`` accepts it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

#: observation indices CartPole keeps without its velocities: cart position, pole angle
_POSITIONS = [0, 2]


class HideCartPoleVelocities(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """CartPole's observation [x, ẋ, θ, θ̇] without the velocities: [cart position, pole angle] (float32)."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(space.low[_POSITIONS], space.high[_POSITIONS], dtype=np.float32)

    def observation(self, observation):
        return np.asarray(observation, dtype=np.float32)[_POSITIONS]  # a new array on every call


def make_cartpole_no_velocity(**kwargs) -> gym.Env:
    """CartPole-v1 with the two velocities removed from the observation: [cart position, pole angle].
    A partially observable task (the velocities must be inferred from successive observations):
    a memoryless policy cannot balance the pole for long, a recurrent one can. Registered with
    CartPole-v1's time limit (500 steps) and reward threshold."""
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    return HideCartPoleVelocities(CartPoleEnv(**kwargs))
