"""Plots and reports from run directories: `runs` reads them into per-seed curves, `plots`
draws the figures (matplotlib), `report` writes the Markdown report and CSV tables, `stats`
holds the bootstrap intervals and rliable-style aggregates. Submodules are imported on use,
so reading runs does not load matplotlib."""
