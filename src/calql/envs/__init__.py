"""Environments shipped with calql (the built-in PointMaze task lives in `calql.envs.pointmaze`)."""
