"""Sweeps: grids of calql train trials on Ray."""
