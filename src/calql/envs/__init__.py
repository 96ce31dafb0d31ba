"""Environments and tasks: the registry (`tasks`) and one module per domain -- `pointmaze`
(built in), `antmaze`, `adroit` (binary), `kitchen`, `manipulation` (OGBench, optional extra) --
plus `common` (observation wrappers, quiet env construction), `binding` (a task bound to its
offline data source, read with `calql.data`'s readers) and `cache` (generated datasets kept as
local Minari datasets).

Layering: `calql.envs` imports `calql.data`, never the reverse (tests/test_layers.py)."""

import contextlib
import io

import gymnasium as gym

# gymnasium-robotics 1.4.2 prints a notice about AdroitHand*Dense-v1 reward changes to stderr at
# import; calql never uses those dense variants, so the notice would only confuse users.
with contextlib.redirect_stderr(io.StringIO()):
    import gymnasium_robotics

gym.register_envs(gymnasium_robotics)
