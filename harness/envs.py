"""Environments: name resolution, the paper's Atari protocol, and one stepping interface.

Atari games run through ale-py's native environment (``ale_py.vector_env.AtariVectorEnv`` with one
sub-environment), which does the DQN preprocessing in C++: action repeat 4 with a max over the last
two raw frames, 84x84 grayscale, 4 stacked frames, up to 30 no-op starts. Sticky actions are off
(``repeat_action_probability=0``: the 2016 ALE had none) and episodes are capped at 108,000
emulator frames. Rewards come back raw; learners clip them (``clip_rewards``) while the logs keep the
raw game score. Every setting is in :class:`EnvSettings` and written to the run's ``config.json``.

Any other gymnasium id (``CartPole-v1``, ...) runs through ``gymnasium.make`` unchanged.

Both kinds are driven through :class:`StepEnv`, whose ``step`` resets the environment itself when an
episode ends ("same-step autoreset") and hands back the final observation for bootstrapping.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

ATARI_FRAME_SKIP = 4


class EnvError(ValueError):
    """An environment name or setting that cannot be used."""


class EnvBuildError(EnvError):
    """An environment whose construction raised (a missing optional dependency, a missing module, a
    constructor that fails): one line with the error and what to do (:func:`cannot_build`)."""


@dataclass(frozen=True)
class EnvSettings:
    """Protocol settings (see README, "Atari protocol"): the paper's DQN preprocessing (frame skip 4
    with a max over the last 2 raw frames, 84x84 grayscale, 4 stacked frames) and reward clipping;
    the rest are choices where the paper is silent, each with its source in the README: 30 no-op
    starts (Nature DQN's evaluation protocol, used here in training too), no sticky actions (the 2016
    ALE had none), a 108,000-frame (30-minute) cap, no life-loss terminals, no FIRE on reset."""

    frame_skip: int = ATARI_FRAME_SKIP  # action repeat (Atari only); max over the last 2 raw frames
    frame_stack: int = 4
    screen_size: int = 84
    grayscale: bool = True
    noop_max: int = 30  # up to this many no-op actions at the start of each episode
    repeat_action_probability: float = 0.0  # sticky actions off
    max_episode_frames: int = 108_000  # emulator frames (30 min of play)
    terminal_on_life_loss: bool = False  # learner sees life loss as terminal; logs keep whole games
    fire_on_reset: bool = False
    full_action_space: bool = False
    clip_rewards: bool = True  # learning uses clip(r, -1, 1); logged returns are raw

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EnvSpec:
    """A resolved environment name."""

    given: str
    env_id: str  # gymnasium id, e.g. ALE/Pong-v5 or CartPole-v1
    game: str  # Atari short name (Pong), else the env id
    is_atari: bool
    rom: str | None = None  # ale-py ROM id (pong, space_invaders)

    @property
    def frames_per_step(self) -> int:
        return ATARI_FRAME_SKIP if self.is_atari else 1


def _camel(rom: str) -> str:
    return "".join(part.capitalize() for part in rom.split("_"))


def atari_games() -> dict[str, str]:
    """Short name (``SpaceInvaders``) -> ROM id (``space_invaders``) for every game ale-py ships."""
    import ale_py.roms

    return {_camel(rom): rom for rom in ale_py.roms.get_all_rom_ids()}


_REGISTERED: set[str] = set()  # module:function entries already called in this process


def import_env_modules(modules: list[str] | tuple[str, ...]) -> None:
    """Import third-party modules that register gymnasium environments (suite key ``env_modules``,
    ``--env-module``): ``package.module`` registers on import; ``package.module:function`` is
    imported and then ``function()`` is called once per process (e.g. ``minatar.gym:register_envs``)."""
    for entry in modules:
        name, _, func = str(entry).partition(":")
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise EnvError(f"env module {name!r} cannot be imported: {_one_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - a module that fails while it is imported, whatever it raises
            raise EnvError(f"env module {name!r} cannot be imported: {type(exc).__name__}: {_one_line(exc)}") from None
        if not func or entry in _REGISTERED:
            continue
        register = getattr(module, func, None)
        if not callable(register):
            raise EnvError(f"env module {name!r} has no function {func!r} to call (from {entry!r}): "
                           f"give module:function of a function that registers the environments")
        try:
            register()
        except Exception as exc:  # noqa: BLE001 - a third party's failure, reported in one line
            raise EnvError(f"{entry}() failed: {type(exc).__name__}: {_one_line(exc)}") from None
        _REGISTERED.add(entry)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def cannot_build(env_id: str, exc: BaseException) -> EnvBuildError:
    """The one-line error for an environment whose construction raised ``exc``: gymnasium's own advice
    where it gives one (``DependencyNotInstalled``: "pip install swig, then gymnasium[box2d]"), else
    what to do about the package that provides it."""
    from gymnasium.error import DependencyNotInstalled

    msg = f"environment {env_id!r} cannot be built: {type(exc).__name__}: {_one_line(exc)}"
    if isinstance(exc, DependencyNotInstalled):
        return EnvBuildError(msg)
    if isinstance(exc, ImportError):
        return EnvBuildError(f"{msg}: install the package that provides it, or fix its registration")
    return EnvBuildError(f"{msg}: fix or reinstall the package that provides it, or use another environment")


def gym_make(env_id: str, **kwargs):
    """``gymnasium.make``; any failure (a missing optional dependency, an entry point whose module is
    not there, a constructor that raises) is an :class:`EnvBuildError` of one line (:func:`cannot_build`)."""
    import gymnasium as gym

    register_shipped_envs()
    try:
        return gym.make(env_id, **kwargs)
    except Exception as exc:  # noqa: BLE001 - whatever the environment's package raises
        raise cannot_build(env_id, exc) from exc


#: environments this harness ships (registered with gymnasium on first use in every process)
SHIPPED_ENVS = ("CartPoleNoVelocity-v1",)


def register_shipped_envs() -> None:
    import gymnasium as gym

    if "CartPoleNoVelocity-v1" not in gym.registry:  # harness/shipped_envs.py
        gym.register(id="CartPoleNoVelocity-v1", entry_point="harness.shipped_envs:make_cartpole_no_velocity",
                     max_episode_steps=500, reward_threshold=475.0)


def resolve_env(name: str, env_modules: tuple[str, ...] = ()) -> EnvSpec:
    """Resolve ``Pong``, ``pong``, ``ALE/Pong-v5``, ``SpaceInvaders`` or any gymnasium id."""
    import gymnasium as gym

    register_shipped_envs()
    if env_modules:
        import_env_modules(env_modules)
    games = atari_games()
    by_lower = {k.lower(): k for k in games}
    match = re.fullmatch(r"ALE/([A-Za-z0-9]+)-v5", name)
    short = match.group(1) if match else name
    key = short.replace("_", "").replace("-", "").lower()
    if key in by_lower:
        game = by_lower[key]
        return EnvSpec(name, f"ALE/{game}-v5", game, True, games[game])
    if name in gym.registry:
        if "ale_py" in str(gym.registry[name].entry_point):
            raise EnvError(
                f"{name!r} is a legacy Atari id without the paper's protocol; use the game's short "
                f"name (e.g. {_camel(gym.registry[name].kwargs.get('game', 'pong'))}) or its ALE/...-v5 id"
            )
        return EnvSpec(name, name, name, False)
    candidates = list(games) + [k for k, v in gym.registry.items() if "ale_py" not in str(v.entry_point)]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise EnvError(
        f"unknown environment {name!r}: use an Atari game ale-py ships (e.g. Pong, Breakout, "
        f"SpaceInvaders or ALE/Pong-v5) or a registered gymnasium id (e.g. CartPole-v1){hint}"
    )


class StepEnv:
    """One environment with same-step autoreset.

    ``step(a)`` returns ``(obs, reward, terminal, episode_over, final_obs)``:
    ``reward`` raw; ``terminal`` true when the learner must not bootstrap (game over, or a life loss
    with ``terminal_on_life_loss``); ``episode_over`` true when the game ended (terminated or
    truncated) and ``obs`` is already the first observation of the next episode; ``final_obs`` the
    last observation of the ended episode (for bootstrapping after truncation), else None.
    """

    observation_space: Any
    n_actions: int

    def reset(self, seed: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, np.ndarray | None]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class AtariStepEnv(StepEnv):
    def __init__(self, spec: EnvSpec, settings: EnvSettings):
        from ale_py.vector_env import AtariVectorEnv

        self._env = AtariVectorEnv(
            spec.rom,
            num_envs=1,
            num_threads=1,
            max_num_frames_per_episode=settings.max_episode_frames,
            repeat_action_probability=settings.repeat_action_probability,
            full_action_space=settings.full_action_space,
            autoreset_mode="SameStep",
            img_height=settings.screen_size,
            img_width=settings.screen_size,
            grayscale=settings.grayscale,
            stack_num=settings.frame_stack,
            frameskip=settings.frame_skip,
            maxpool=True,
            noop_max=settings.noop_max,
            episodic_life=False,
            life_loss_info=settings.terminal_on_life_loss,
            reward_clipping=False,
            use_fire_reset=settings.fire_on_reset,
        )
        self.observation_space = self._env.single_observation_space
        self.n_actions = int(self._env.single_action_space.n)
        self._action = np.zeros(1, dtype=np.int64)
        self._life_loss = settings.terminal_on_life_loss
        self._episode_frame = 0  # emulator frames into the current game (ale-py's episode_frame_number)

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, info = self._env.reset(seed=None if seed is None else seed % 2**31)  # ALE takes int32 seeds
        self._episode_frame = int(info["episode_frame_number"][0])
        return obs[0]

    def step(self, action: int):
        self._action[0] = action
        obs, reward, terminated, truncated, info = self._env.step(self._action)
        final = info.get("final_obs")
        episode_over = final is not None
        frame = int(info["episode_frame_number"][0])
        if episode_over and self._life_loss and not truncated[0] and frame > self._episode_frame:
            # With life_loss_info, ale-py reports every life loss as terminated with a final_obs but
            # does not reset: the game goes on (its frame number keeps counting). Terminal for the
            # learner, not the end of the game (a game over restarts the count at the new game).
            episode_over, final = False, None
        self._episode_frame = frame
        return obs[0], float(reward[0]), bool(terminated[0]), episode_over, (final[0] if episode_over else None)

    def close(self) -> None:
        self._env.close()


class GymStepEnv(StepEnv):
    def __init__(self, spec: EnvSpec):
        import gymnasium as gym

        self._env = gym_make(spec.env_id)
        space = self._env.action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise EnvError(f"{spec.env_id} has action space {space}; the harness needs a Discrete one")
        self.observation_space = self._env.observation_space
        self.n_actions = int(space.n)

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self._env.reset(seed=seed)
        if seed is not None:
            self._env.action_space.seed(seed)
        return np.asarray(obs, dtype=np.float32)

    def step(self, action: int):
        obs, reward, terminated, truncated, _ = self._env.step(int(action))
        obs = np.asarray(obs, dtype=np.float32)
        if terminated or truncated:
            return self.reset(), float(reward), bool(terminated), True, obs
        return obs, float(reward), False, False, None

    def close(self) -> None:
        self._env.close()


def make_env(spec: EnvSpec, settings: EnvSettings) -> StepEnv:
    """Build the environment a worker (or evaluator) steps. Any failure is an :class:`EnvError` of one
    line: :class:`EnvBuildError` when its construction raised, else an action space the harness cannot
    train on."""
    if not spec.is_atari:
        return GymStepEnv(spec)
    try:
        import ale_py  # noqa: F401  (ROMs ship with ale-py; nothing is downloaded)

        return AtariStepEnv(spec, settings)
    except Exception as exc:  # noqa: BLE001
        raise cannot_build(spec.env_id, exc) from exc
