"""The promotion ladder: training budgets of longer and longer proxy runs, kept as small plain data.

Rung 0 is the search's own budget; rung k trains `reduction_factor ** k` times its steps, from scratch, with the
same schedule, batch, patch, data and seed (Optuna's SuccessiveHalvingPruner and Hyperband call the factor
`reduction_factor`). At each rung the best-ranked undecided candidates, the top 1/reduction_factor of those that
reached it, move up. Candidates, references and calibration points are trained the same way at every rung, so
a rung's predictor is fitted on points of its own budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import train_proxy

DEFAULT_REDUCTION_FACTOR = 4
DEFAULT_MAX_RUNG = 2


@dataclass(frozen=True)
class Ladder:
    """Rung k trains `base.iterations * reduction_factor ** k` steps; rungs 0..max_rung."""

    base: train_proxy.Budget
    reduction_factor: int = DEFAULT_REDUCTION_FACTOR
    max_rung: int = DEFAULT_MAX_RUNG

    def __post_init__(self) -> None:
        if isinstance(self.reduction_factor, bool) or not isinstance(self.reduction_factor, int) \
                or self.reduction_factor < 2:
            raise ValueError(f"--reduction-factor must be an integer of 2 or more, got {self.reduction_factor!r}")
        if isinstance(self.max_rung, bool) or not isinstance(self.max_rung, int) or self.max_rung < 0:
            raise ValueError(f"--max-rung must be 0 or more, got {self.max_rung!r}")

    @property
    def rungs(self) -> range:
        return range(self.max_rung + 1)

    def budget(self, rung: int) -> train_proxy.Budget:
        """The training budget of `rung` (rung 0: the search's own, unchanged)."""
        if rung not in self.rungs:
            raise ValueError(f"rung {rung} is not on this ladder (rungs 0..{self.max_rung})")
        if rung == 0:
            return self.base
        return self.base.replace(name=f"{self.base.name}@rung{rung}",
                                 iterations=self.base.iterations * self.reduction_factor ** rung)

    def promoted(self, reached: int) -> int:
        """How many of the `reached` undecided candidates of a rung move up: the top 1/reduction_factor, one at
        least (successive halving)."""
        return max(1, reached // self.reduction_factor) if reached else 0

    def table(self, *, reached: dict[int, int] | None = None) -> str:
        """The ladder as a table: rung, steps, budget name, and how many candidates reached each rung."""
        reached = reached or {}
        lines = [f"{'rung':>4}  {'steps':>7}  {'budget':<16}  {'x rung 0':>8}  {'reached':>7}"]
        for rung in self.rungs:
            budget = self.budget(rung)
            count = str(reached[rung]) if rung in reached else "-"
            lines.append(f"{rung:>4}  {budget.iterations:>7}  {budget.name:<16}  "
                         f"{self.reduction_factor ** rung:>8}  {count:>7}")
        return "\n".join(lines)
