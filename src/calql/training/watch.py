"""Watching a run for a CQL Lagrange multiplier that runs away (docs/algorithm.md section 5).

With few action dimensions, uniform random actions cover the data's, the CQL gap cannot fall
to a small target, and alpha' grows without bound (Adam moves log alpha' by about the critic
learning rate per step, so alpha' doubles every ~2k steps) until it sits at its clip and the
CQL term swamps the TD loss. The watch says so once, in one line, with what to set instead.
"""

import dataclasses
import math

from calql.agent.losses import LAGRANGE_MULTIPLIER_MAX

RUNAWAY_GROWTH = 1_000.0
"""alpha' grown this many times while the gap never came down to its target counts as a runaway
(about 23k steps at the authors' critic learning rate): ordinary early growth is far smaller."""
AT_CLIP = 0.99 * LAGRANGE_MULTIPLIER_MAX


@dataclasses.dataclass
class LagrangeWatch:
    """Fed the logged (gradient step, mean CQL gap, alpha') of one run; warns at most once."""

    target_gap: float
    stretch_start: tuple[int, float] | None = None
    """(step, alpha') when the gap last went above its target and has stayed there since."""
    warned: bool = False

    def observe(self, step: int, gap: float, multiplier: float) -> str | None:
        """The one-line warning the first time alpha' runs away, else None."""
        if self.warned or not (math.isfinite(gap) and math.isfinite(multiplier)):
            return None
        if gap <= self.target_gap:
            self.stretch_start = None
            return None
        if self.stretch_start is None:
            self.stretch_start = (step, multiplier)
        since, start_value = self.stretch_start
        if multiplier >= AT_CLIP or multiplier >= RUNAWAY_GROWTH * start_value:
            self.warned = True
            return runaway_message(step, since, gap, multiplier, self.target_gap)
        return None


def runaway_message(step: int, since: int, gap: float, multiplier: float, target_gap: float) -> str:
    where = "is at its clip 1e6" if multiplier >= AT_CLIP else f"has grown to {multiplier:.3g}"
    return (
        f"warning: the CQL Lagrange multiplier alpha' {where} at gradient step {step}: the CQL gap ({gap:.2f}) has "
        f"stayed above --agent.cql-target-action-gap {target_gap:g} since step {since}, so the target is out of "
        "reach (typical with few action dimensions) and the CQL term swamps the TD loss; use a fixed weight "
        "(--agent.no-cql-lagrange --agent.cql-alpha 5) or a target the gap reaches"
    )
