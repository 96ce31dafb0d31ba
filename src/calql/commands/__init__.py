"""Subcommands of `calql` other than `train`: each module exposes `main(args: list[str]) -> int`."""
