"""Environments and tasks: the built-in PointMaze task (`pointmaze`) and the registry (`tasks`)."""

import contextlib
import io

import gymnasium as gym

# gymnasium-robotics 1.4.2 prints a notice about AdroitHand*Dense-v1 reward changes to stderr at
# import; calql never uses those dense variants, so the notice would only confuse users.
with contextlib.redirect_stderr(io.StringIO()):
    import gymnasium_robotics

gym.register_envs(gymnasium_robotics)
