"""The checks' stages and default settings, apart from the checks themselves so that the command
line can show them without importing torch (``harness.check.algorithm`` needs it)."""

ALGORITHM_STAGES = ("api", "seed", "performance")
#: default performance floors, frames/s of one worker, by observation kind of the check's env
ALGORITHM_MIN_FPS = {"vector": 200.0, "image": 50.0}
DEFAULT_ENV = "CartPole-v1"
DEFAULT_FRAMES = 2_000

ENV_STAGES = ("api", "gymnasium", "network", "seed", "performance")
ENV_MIN_FPS = 500.0
DEFAULT_STEPS = 500
